//! The health listener's accept loop: plain HTTP/1.1 for anyone who can reach the port, so bounded. At most
//! [`Limits::connections`] connections are served at once; the next one waits in the kernel's backlog until one
//! ends (the accept loop takes a slot before it accepts). A client has [`Limits::header_read`] to send a request's
//! headers and a connection lives at most [`Limits::connection`], so a slow or idle client frees its slot.
//! docs/operations.md "Health and metrics".

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How much the listener serves at once and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub connections: usize,
    /// Time to send a request's headers.
    pub header_read: Duration,
    /// A connection's whole life (keep-alive requests included).
    pub connection: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: 32,
            header_read: Duration::from_secs(5),
            connection: Duration::from_secs(30),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `cancel`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.connections.max(1)));
    loop {
        let slot = tokio::select! {
            () = cancel.cancelled() => return,
            s = slots.clone().acquire_owned() => s,
        };
        let Ok(slot) = slot else { return };
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::debug!(error = %e, "health listener accept failed");
                continue;
            }
        };
        let svc = TowerToHyperService::new(app.clone());
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                () = cancel.cancelled() => {}
                done = tokio::time::timeout(limits.connection, conn) => match done {
                    Ok(Err(e)) => tracing::debug!(error = %e, "health connection ended"),
                    Err(_) => tracing::debug!("health connection closed at its deadline"),
                    Ok(Ok(())) => {}
                },
            }
        });
    }
}

#[cfg(test)]
mod tests;
