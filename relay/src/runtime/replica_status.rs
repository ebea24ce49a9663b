//! Records this replica's coordination status in the shared state whenever it changes, so that
//! `GET /v1/coordination` on any replica lists every connected replica's (docs/protocol.md, admin API). A failed
//! write is tried again every [`RETRY`] until one succeeds: the status is advisory, never a reason to stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::coordination::CoordinationStatus;
use crate::state::RelayStore;

/// How long after a failed write the status is written again.
const RETRY: Duration = Duration::from_secs(10);

/// Spawns [`run`] on `tasks`.
pub(super) fn spawn(
    tasks: &mut tokio::task::JoinSet<()>,
    store: &Arc<dyn RelayStore>,
    status: &watch::Receiver<CoordinationStatus>,
    cancel: &CancellationToken,
) {
    tasks.spawn(run(store.clone(), status.clone(), cancel.clone()));
}

/// Runs until `cancel`.
async fn run(
    store: Arc<dyn RelayStore>,
    mut status: watch::Receiver<CoordinationStatus>,
    cancel: CancellationToken,
) {
    loop {
        let current = status.borrow_and_update().clone();
        let written = record(&store, &current).await;
        let changed = async {
            if written {
                status.changed().await
            } else {
                tokio::time::sleep(RETRY).await;
                Ok(())
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            r = changed => if r.is_err() { return },
        }
    }
}

async fn record(store: &Arc<dyn RelayStore>, status: &CoordinationStatus) -> bool {
    let Ok(json) = serde_json::to_value(status) else {
        return false;
    };
    let store = store.clone();
    let replica = status.replica.clone();
    let written = tokio::task::spawn_blocking(move || store.record_replica_status(&replica, &json))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(e) = &written {
        tracing::warn!(error = %e, "could not record this replica's coordination status");
    }
    written.is_ok()
}
