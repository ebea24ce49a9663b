//! Binding and serving: a loopback address only unless explicitly allowed, and the per-run token.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::cooldown::{Cooldown, RETRY_COOLDOWN};
use super::identity::Identity;
use super::routes::{router, AppState};

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

/// A bound listener and the run's token, not yet serving.
pub struct Bound {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    token: String,
}

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("addr", &self.addr)
            .field("token", &"<redacted>")
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
    // 244 random bits (two version-4 UUIDs).
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    Ok(Bound {
        listener,
        addr,
        token,
    })
}

impl Bound {
    /// The address bound (the port chosen when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address to open: it carries the run's token, which `/login` exchanges for a cookie.
    pub fn login_url(&self) -> String {
        format!("http://{}/login?token={}", self.addr, self.token)
    }

    /// Serves until Ctrl-C.
    pub async fn serve(self, id: Identity) -> Result<(), DashboardError> {
        let mut hosts = vec![self.addr.to_string()];
        if self.addr.ip().is_loopback() {
            hosts.push(format!("localhost:{}", self.addr.port()));
        }
        let st = Arc::new(AppState {
            id,
            token: super::auth::Token(self.token),
            hosts,
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
