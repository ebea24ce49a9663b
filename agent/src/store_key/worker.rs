//! The running agent's store-key task: it owns the store key state, resumes a rotation found at start, starts one
//! when `[store] rotate_key_days` says the key is due or `tessera-agent rotate-store-key` asks (through the local
//! API), and re-encrypts in bounded batches with a pause between them while the agent keeps serving.

use crate::clock::unix_now;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::{rotate, KeyState, StoreKeyError};
use crate::config::{AgentConfig, SealerBackend};
use crate::store::Store;

/// How often the schedule is looked at.
const SCHEDULE_CHECK: Duration = Duration::from_secs(3_600);
/// Wait after a failed step before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// A caller other than root may not rotate a store key younger than this (each rotation rewrites the whole store:
/// flash wear, if the agent's own uid, which jobs run as, asked again and again).
const MIN_KEY_AGE_SECS: i64 = 3_600;

/// Where the store key stands, as `tessera-agent rotate-store-key` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreKeyStatus {
    /// `steady`, `reencrypting` or `destroying`.
    pub state: String,
    /// The active generation.
    pub generation: u32,
    /// What seals it: `file` or `tpm`.
    pub sealer: String,
    /// During a rotation: the generation being retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<u32>,
}

impl From<&KeyState> for StoreKeyStatus {
    fn from(state: &KeyState) -> Self {
        Self {
            state: state.name().to_owned(),
            generation: state.active().generation,
            sealer: state.active().sealer.backend().to_owned(),
            retiring: match state {
                KeyState::Reencrypting { retiring, .. } => Some(retiring.generation),
                KeyState::Destroying { retired, .. } => Some(retired.generation),
                KeyState::Steady { .. } => None,
            },
        }
    }
}

/// Why the task did not start a rotation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RotateRefused {
    /// One is under way, or the key is too young for this caller: try later.
    #[error("{0}")]
    NotNow(String),
    /// Sealing the new key or writing the manifest failed (the message names the cause).
    #[error("{0}")]
    Failed(String),
}

/// A request to the task.
#[derive(Debug)]
enum Request {
    Rotate {
        to: Option<SealerBackend>,
        by_root: bool,
        reply: oneshot::Sender<Result<StoreKeyStatus, RotateRefused>>,
    },
}

/// Asks the store-key task for a rotation.
#[derive(Debug, Clone)]
pub struct StoreKeyHandle {
    tx: mpsc::Sender<Request>,
    status: watch::Receiver<StoreKeyStatus>,
}

impl StoreKeyHandle {
    /// Where the store key stood after the task's last step (`tessera-agent status`, the metrics); never waits.
    pub fn status(&self) -> StoreKeyStatus {
        self.status.borrow().clone()
    }

    /// Starts a rotation to a new generation sealed by `to` (default: the sealer of the current key). The answer
    /// comes once the new key is sealed and active; re-encryption goes on in the background. A caller other than
    /// root (`by_root` false) may not rotate a key younger than an hour.
    pub async fn rotate(
        &self,
        to: Option<SealerBackend>,
        by_root: bool,
    ) -> Result<StoreKeyStatus, RotateRefused> {
        let stopped = || RotateRefused::Failed("the store key task has stopped".to_owned());
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Rotate { to, by_root, reply })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// The task and its handle.
pub fn spawn_parts(
    cfg: Arc<AgentConfig>,
    store: Store,
    state: KeyState,
) -> (StoreKeyHandle, StoreKeyTask) {
    let (tx, rx) = mpsc::channel(4);
    let (status_tx, status) = watch::channel(StoreKeyStatus::from(&state));
    (
        StoreKeyHandle { tx, status },
        StoreKeyTask {
            cfg,
            store,
            state,
            rx,
            status: status_tx,
        },
    )
}

/// The task's state.
#[derive(Debug)]
pub struct StoreKeyTask {
    cfg: Arc<AgentConfig>,
    store: Store,
    state: KeyState,
    rx: mpsc::Receiver<Request>,
    status: watch::Sender<StoreKeyStatus>,
}

impl StoreKeyTask {
    /// Runs until `cancel` fires (a batch under way completes first: each is one atomic write).
    pub async fn run(mut self, cancel: CancellationToken) {
        if matches!(self.state, KeyState::Reencrypting { .. }) {
            tracing::info!(
                generation = self.state.active().generation,
                "store key rotation: resuming the re-encryption"
            );
        }
        loop {
            self.status.send_replace(StoreKeyStatus::from(&self.state));
            let wait = if matches!(self.state, KeyState::Reencrypting { .. }) {
                match self.batch().await {
                    Ok(()) => Duration::from_millis(self.cfg.store.reencrypt_pause_ms),
                    Err(e) => {
                        tracing::error!(error = %e, "store key rotation: step failed; retrying");
                        RETRY_AFTER
                    }
                }
            } else {
                if let Err(e) = self.schedule().await {
                    tracing::error!(error = %e, "store key rotation: could not start the scheduled rotation");
                }
                if matches!(self.state, KeyState::Reencrypting { .. }) {
                    Duration::ZERO
                } else {
                    SCHEDULE_CHECK
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                req = self.rx.recv() => match req {
                    Some(Request::Rotate { to, by_root, reply }) => {
                        let answer = self.requested(to, by_root).await;
                        self.status.send_replace(StoreKeyStatus::from(&self.state));
                        let _ = reply.send(answer);
                    }
                    None => return,
                },
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AgentConfig, &Store) -> Result<T, StoreKeyError> + Send + 'static,
    ) -> Result<T, StoreKeyError> {
        let cfg = self.cfg.clone();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&cfg, &store))
            .await
            .map_err(|_| {
                StoreKeyError::Store(crate::store::StoreError::Internal(
                    "store key task panicked",
                ))
            })?
    }

    async fn requested(
        &mut self,
        to: Option<SealerBackend>,
        by_root: bool,
    ) -> Result<StoreKeyStatus, RotateRefused> {
        let age = unix_now().saturating_sub(self.state.active().created_at);
        if !by_root && matches!(self.state, KeyState::Steady { .. }) && age < MIN_KEY_AGE_SECS {
            return Err(RotateRefused::NotNow(format!(
                "the store key is {age} s old; only root may rotate it again within an hour"
            )));
        }
        let to = to.unwrap_or_else(|| self.state.active().sealer.kind());
        self.start(to).await.map_err(|e| {
            tracing::warn!(error = %e, "store key rotation refused");
            match e {
                StoreKeyError::InProgress { .. } => RotateRefused::NotNow(e.to_string()),
                other => RotateRefused::Failed(other.to_string()),
            }
        })
    }

    async fn start(&mut self, to: SealerBackend) -> Result<StoreKeyStatus, StoreKeyError> {
        let state = self.state.clone();
        let next = self
            .blocking(move |cfg, store| rotate::start(cfg, store, &state, to, unix_now()))
            .await?;
        self.state = next;
        Ok(StoreKeyStatus::from(&self.state))
    }

    async fn batch(&mut self) -> Result<(), StoreKeyError> {
        let batch = self.cfg.store.reencrypt_batch;
        let done = self
            .blocking(move |_, store| rotate::step(store, batch))
            .await?;
        if done.done {
            let state = self.state.clone();
            self.state = self
                .blocking(move |cfg, store| rotate::finish(cfg, store, state))
                .await?;
        }
        Ok(())
    }

    async fn schedule(&mut self) -> Result<(), StoreKeyError> {
        let days = i64::from(self.cfg.store.rotate_key_days);
        if days == 0 || !matches!(self.state, KeyState::Steady { .. }) {
            return Ok(());
        }
        let due = self.state.active().created_at.saturating_add(days * 86_400);
        if unix_now() >= due {
            tracing::info!(days, "store key rotation: the store key is due");
            self.start(self.state.active().sealer.kind()).await?;
        }
        Ok(())
    }
}
