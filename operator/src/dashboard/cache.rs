//! One answer shared by every open tab for a short time. Each page refreshes every 2 s; without this, every tab
//! would read every credential's deliveries, the operator's files and the revocation list on every refresh. The
//! first request after an answer is older than its time to live asks the relay; requests arriving meanwhile wait
//! for that one answer instead of asking again (docs/operations.md, "Dashboard").

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_proto::audit::AuditEntry;

use super::snapshot::{AgentRow, AlertRow, CredRow, FilesStamp, Judge};

/// How long a page's answer is shared: the pages' refresh interval.
pub(crate) const PAGE_TTL: Duration = Duration::from_secs(2);
/// How long the operator's files and the revocation list are reused.
pub(crate) const FILES_TTL: Duration = Duration::from_secs(5);

/// An answer, or the error to show, shared.
pub(crate) type Shared<T> = Result<Arc<T>, String>;

/// One value, computed at most once per `ttl`.
pub(crate) struct Ttl<T> {
    ttl: Duration,
    slot: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T> std::fmt::Debug for Ttl<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ttl")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> Ttl<T> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// The value made at most `ttl` before `now`, or a new one from `make` (one at a time: callers arriving while
    /// it is made wait for it and get it).
    pub(crate) async fn get<F, Fut>(&self, now: Instant, make: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.get_unless(now, |_| false, make).await
    }

    /// As [`Ttl::get`], but a value for which `stale` is true is made again however young.
    pub(crate) async fn get_unless<S, F, Fut>(&self, now: Instant, stale: S, make: F) -> T
    where
        S: FnOnce(&T) -> bool,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((at, v)) = slot.as_ref() {
            if now.saturating_duration_since(*at) < self.ttl && !stale(v) {
                return v.clone();
            }
        }
        let v = make().await;
        *slot = Some((now, v.clone()));
        v
    }
}

/// The dashboard's shared answers.
#[derive(Debug)]
pub(crate) struct Caches {
    /// With the files' stamp when read: a file changed since (a grant signed here) is read again at once.
    pub(crate) files: Ttl<(FilesStamp, Shared<Judge>)>,
    pub(crate) credentials: Ttl<Shared<(Vec<CredRow>, Vec<String>)>>,
    pub(crate) fleet: Ttl<Shared<Vec<AgentRow>>>,
    pub(crate) alerts: Ttl<Shared<Vec<AlertRow>>>,
    pub(crate) status: Ttl<Shared<BTreeMap<String, String>>>,
    pub(crate) audit: Ttl<Shared<Vec<AuditEntry>>>,
}

impl Caches {
    pub(crate) fn new() -> Self {
        Self {
            files: Ttl::new(FILES_TTL),
            credentials: Ttl::new(PAGE_TTL),
            fleet: Ttl::new(PAGE_TTL),
            alerts: Ttl::new(PAGE_TTL),
            status: Ttl::new(PAGE_TTL),
            audit: Ttl::new(PAGE_TTL),
        }
    }
}

/// The most rows a table shows; the rest are counted in a note ([`cap`]).
pub(crate) const MAX_ROWS: usize = 1000;

/// The first [`MAX_ROWS`] of `rows`, and how many there were when that is more.
pub(crate) fn cap<T>(rows: &[T]) -> (&[T], Option<usize>) {
    if rows.len() > MAX_ROWS {
        (rows.get(..MAX_ROWS).unwrap_or(rows), Some(rows.len()))
    } else {
        (rows, None)
    }
}
