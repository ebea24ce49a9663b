//! The small key-value contract the encrypted store needs, and its sled implementation.
//!
//! sled 0.34 caveats we design around: its README calls it beta, so everything above this trait is
//! backend-agnostic; `flush` uses `sync_file_range` + `fsync` and is the only durability point we rely on (we flush
//! before every acknowledgement); only one process may open a database (a second open is a clear
//! [`BackendError::Locked`], not a hang).

use std::path::Path;

/// A write in an atomic batch: a value to set, or `None` to remove.
pub(crate) type BatchOp = (Vec<u8>, Option<Vec<u8>>);

/// Key-value pairs, in key order.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Errors from the key-value backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// Another process holds the database.
    #[error("the store at {0} is in use by another process")]
    Locked(String),
    /// The backend failed.
    #[error("store backend: {0}")]
    Io(String),
}

/// What the encrypted store needs from a key-value backend.
pub(crate) trait RecordBackend: Send + Sync + std::fmt::Debug {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    /// Applies all operations atomically (all or none survive a crash).
    fn apply(&self, ops: Vec<BatchOp>) -> Result<(), BackendError>;
    /// Makes every applied operation durable.
    fn flush(&self) -> Result<(), BackendError>;
    /// All entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, BackendError>;
    /// The last key with `prefix`, if any.
    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    /// Visits entries in key order from just after `after` (from the first key when `None`) until `visit` returns
    /// `false` or the keys run out.
    fn visit_after(
        &self,
        after: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BackendError>;
}

/// How long an open waits for a lock that is being released.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// sled page cache size.
const CACHE_BYTES: u64 = 2 * 1024 * 1024;

/// sled as the backend.
#[derive(Debug)]
pub(crate) struct SledBackend {
    db: sled::Db,
}

impl SledBackend {
    /// Opens the database. A lock held by a process that is just exiting (or, in one process, by a handle whose
    /// background flusher has not stopped yet) is waited for up to [`LOCK_WAIT`] before [`BackendError::Locked`].
    pub(crate) fn open(path: &Path) -> Result<Self, BackendError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match Self::try_open(path) {
                Err(BackendError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn try_open(path: &Path) -> Result<Self, BackendError> {
        let db = sled::Config::new()
            .path(path)
            .flush_every_ms(Some(500))
            // sled's default page cache is 1 GiB; an appliance holds a few thousand small records.
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    BackendError::Locked(path.display().to_string())
                }
                sled::Error::Io(io) if io.to_string().contains("lock") => {
                    BackendError::Locked(path.display().to_string())
                }
                other => BackendError::Io(other.to_string()),
            })?;
        Ok(Self { db })
    }
}

fn io(e: &sled::Error) -> BackendError {
    BackendError::Io(e.to_string())
}

impl RecordBackend for SledBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.db.get(key).map_err(|e| io(&e))?.map(|v| v.to_vec()))
    }

    fn apply(&self, ops: Vec<BatchOp>) -> Result<(), BackendError> {
        let mut batch = sled::Batch::default();
        for (k, v) in ops {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.db.apply_batch(batch).map_err(|e| io(&e))
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.db.flush().map(|_| ()).map_err(|e| io(&e))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, BackendError> {
        self.db
            .scan_prefix(prefix)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(|e| io(&e)))
            .collect()
    }

    fn visit_after(
        &self,
        after: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BackendError> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.to_vec()));
        for entry in self.db.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (k, v) = entry.map_err(|e| io(&e))?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self
            .db
            .scan_prefix(prefix)
            .next_back()
            .transpose()
            .map_err(|e| io(&e))?
            .map(|(k, _)| k.to_vec()))
    }
}
