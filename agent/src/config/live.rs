//! The configuration in force for new requests. One [`LivePublisher`] (the SIGHUP task) replaces it whole; every
//! reader takes a snapshot per request ([`LiveConfig::current`]), so a request sees one configuration from start to
//! end and a reload never blocks a reader. Only the read policy and the job templates ever differ from the
//! configuration the agent started with (crate::config::reload). docs/operations.md "Reloading".

use std::sync::Arc;

use tokio::sync::watch;

use super::AgentConfig;

/// A reader's handle on the configuration in force.
#[derive(Debug, Clone)]
pub struct LiveConfig(watch::Receiver<Arc<AgentConfig>>);

/// The one writer.
#[derive(Debug)]
pub struct LivePublisher(watch::Sender<Arc<AgentConfig>>);

impl LiveConfig {
    /// A writer and its readers, starting with `cfg`.
    pub fn new(cfg: Arc<AgentConfig>) -> (LivePublisher, Self) {
        let (tx, rx) = watch::channel(cfg);
        (LivePublisher(tx), Self(rx))
    }

    /// A configuration that never changes (no writer).
    pub fn fixed(cfg: AgentConfig) -> Self {
        Self::new(Arc::new(cfg)).1
    }

    /// The configuration in force now.
    pub fn current(&self) -> Arc<AgentConfig> {
        self.0.borrow().clone()
    }
}

impl LivePublisher {
    /// The configuration in force now.
    pub fn current(&self) -> Arc<AgentConfig> {
        self.0.borrow().clone()
    }

    /// Puts `cfg` in force for every request that starts from now on.
    pub fn publish(&self, cfg: AgentConfig) {
        self.0.send_replace(Arc::new(cfg));
    }
}
