//! Binding and serving: a loopback address only unless explicitly allowed, the per-run random host name, the
//! single-use login token and the session value.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::auth::{random_host, Secret};
use super::cache::Caches;
use super::cooldown::{Cooldown, RETRY_COOLDOWN};
use super::identity::Identity;
use super::routes::{router, AppState};

/// The largest answer the dashboard reads from the relay (the commands allow
/// [`crate::client::MAX_ANSWER_BYTES`]).
pub(crate) const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Why the dashboard could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// The listen address is not a loopback address and that was not explicitly allowed.
    #[error(
        "{0} is not a loopback address: the dashboard acts with the operator's key, so it listens on 127.0.0.1 or \
         ::1 unless --allow-non-loopback is given"
    )]
    NotLoopback(SocketAddr),
    /// Binding failed.
    #[error("listening on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// A bound listener, the run's host name and login token, not yet serving.
pub struct Bound {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    host: String,
    login: Secret,
}

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("addr", &self.addr)
            .field("host", &self.host)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// Binds `listen`, refusing a non-loopback address unless `allow_non_loopback`.
pub async fn bind(listen: SocketAddr, allow_non_loopback: bool) -> Result<Bound, DashboardError> {
    if !listen.ip().is_loopback() && !allow_non_loopback {
        return Err(DashboardError::NotLoopback(listen));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| DashboardError::Bind(listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| DashboardError::Bind(listen, e))?;
    Ok(Bound {
        listener,
        addr,
        host: random_host(),
        login: Secret::random(),
    })
}

impl Bound {
    /// The address bound (the port chosen when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The only `Host` the dashboard answers: the run's random name under `.localhost` and the port. Browsers
    /// resolve it to their own loopback address; on another machine (`--allow-non-loopback`) the operator reaches
    /// the dashboard by this name through a tunnel (docs/operations.md, "Dashboard").
    pub fn host(&self) -> String {
        format!("{}:{}", self.host, self.addr.port())
    }

    /// The address to open: the run's host name and its login token, which `/login` exchanges, once, for a
    /// session cookie.
    pub fn login_url(&self) -> String {
        format!("http://{}/login?token={}", self.host(), self.login.expose())
    }

    /// Serves until Ctrl-C.
    pub async fn serve(self, mut id: Identity) -> Result<(), DashboardError> {
        // Its own answer cap, smaller than the commands': a hostile relay must not fill the workstation's memory.
        id.client = id.client.with_max_answer(MAX_ANSWER_BYTES);
        let host = self.host();
        let st = Arc::new(AppState {
            id,
            login: Mutex::new(Some(self.login)),
            session: Secret::random(),
            host,
            caches: Caches::new(),
            first_head: Mutex::new(None),
            cooldown: Cooldown::new(RETRY_COOLDOWN),
            sign: tokio::sync::Mutex::new(()),
            verified: Mutex::new(None),
        });
        axum::serve(self.listener, router(st))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(DashboardError::Serve)
    }
}
