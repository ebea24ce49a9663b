//! A small HTTPS client for the admin API, authenticated by the operator's certificate. It moves bytes only: what
//! the relay answers is parsed by [`crate::answers`] and checked by the commands.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

/// The largest answer read from the relay by default; a longer one is an error, not read into memory.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Client errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Could not connect or talk TLS/HTTP.
    #[error("the relay's admin API at {0} (--relay, TESSERA_RELAY): {1}")]
    Transport(String, String),
    /// The relay accepted no connection, or gave no complete answer, within the time limit.
    #[error(
        "the relay's admin API at {relay} (--relay, TESSERA_RELAY) gave no answer within {secs} s: check that the relay \
         runs and that this is its admin address, or allow longer with --timeout (TESSERA_TIMEOUT)"
    )]
    Timeout {
        /// The address asked (`host:port`).
        relay: String,
        /// The limit, seconds.
        secs: u64,
    },
    /// The relay answered with an error.
    #[error("relay: {status} {error}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Public error class.
        error: String,
        /// Message.
        message: String,
    },
}

/// The admin API at `addr` (`host:port`).
#[derive(Debug, Clone)]
pub struct AdminClient {
    addr: String,
    host: String,
    tls: Arc<rustls::ClientConfig>,
    timeout: std::time::Duration,
    max_answer: usize,
}

/// How long one request may take by default, connection and TLS handshake included.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// A relay's text with every control character escaped, so that it cannot move the cursor, rewrite a line or set
/// a terminal title when printed.
pub fn escape_control(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

impl AdminClient {
    /// A client trusting `tls`'s roots, presenting its client certificate.
    pub fn new(addr: &str, tls: Arc<rustls::ClientConfig>) -> Self {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_owned();
        Self {
            addr: addr.to_owned(),
            host,
            tls,
            timeout: DEFAULT_TIMEOUT,
            max_answer: MAX_ANSWER_BYTES,
        }
    }

    /// The same client reading at most `bytes` of each answer (a longer one is an error, not read into memory);
    /// [`MAX_ANSWER_BYTES`] by default. The dashboard asks for less (docs/operations.md, "Dashboard").
    #[must_use]
    pub fn with_max_answer(mut self, bytes: usize) -> Self {
        self.max_answer = bytes;
        self
    }

    /// The largest answer this client reads.
    pub fn max_answer(&self) -> usize {
        self.max_answer
    }

    /// The same client with another per-request time limit.
    #[must_use]
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<serde_json::Value, ClientError> {
        tokio::time::timeout(self.timeout, self.exchange(method, path, body))
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Timeout {
                    relay: self.addr.clone(),
                    secs: self.timeout.as_secs(),
                })
            })
    }

    async fn exchange(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<serde_json::Value, ClientError> {
        let t =
            |e: &dyn std::fmt::Display| ClientError::Transport(self.addr.clone(), e.to_string());
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| t(&e))?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| t(&e))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| t(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| t(&e))?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| t(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| t(&e))?;
        let status = resp.status();
        let bytes = http_body_util::Limited::new(resp.into_body(), self.max_answer)
            .collect()
            .await
            .map_err(|e| t(&e))?
            .to_bytes();
        if status.is_success() {
            if status == hyper::StatusCode::OK && path == "/metrics" {
                return Ok(serde_json::Value::String(
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
            return serde_json::from_slice(&bytes).map_err(|e| t(&e));
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        Err(ClientError::Api {
            status: status.as_u16(),
            error: escape_control(v.get("error").and_then(|e| e.as_str()).unwrap_or("unknown")),
            message: escape_control(
                v.get("message")
                    .and_then(|e| e.as_str())
                    .unwrap_or_default(),
            ),
        })
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.call(hyper::Method::GET, path, None).await
    }

    /// POST JSON.
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.call(
            hyper::Method::POST,
            path,
            Some(serde_json::to_vec(body).unwrap_or_default()),
        )
        .await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.call(hyper::Method::DELETE, path, None).await
    }
}
