//! A compromised relay's admin API for the operator's hostile suite: real HTTPS with the relay's admin certificate,
//! requiring an operator certificate from the org CA like the real one, answering each `GET` with whatever the test
//! scripted (the lie), and recording every request the operator's commands send (what was signed and sealed).
//! It never forwards anything: the real relay is not involved.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

/// A request the operator's command sent.
#[derive(Debug, Clone)]
pub struct Received {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// The path.
    pub path: String,
    /// The body.
    pub body: Vec<u8>,
}

#[derive(Debug, Default)]
struct Script {
    answers: BTreeMap<String, serde_json::Value>,
    /// Scripted answers to non-GET requests: (method, path) -> (status, body). Default: 200 `{"ok": true}`.
    writes: BTreeMap<(String, String), (u16, serde_json::Value)>,
    /// Writes answered as scripted before every further one is answered 503 `busy` (`None`: no limit).
    writes_left: Option<usize>,
    received: Vec<Received>,
}

/// The lying admin API, serving on its own thread until dropped.
#[derive(Debug)]
pub struct LyingAdmin {
    script: Arc<Mutex<Script>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LyingAdmin {
    /// On the cluster's admin address, with the relay's admin certificate (`relay-admin`): what the operator's
    /// commands connect to in place of the real relay.
    pub fn for_cluster(c: &crate::cluster::Cluster) -> Self {
        let admin = c.service_identity("relay-admin");
        Self::start(
            &c.admin,
            &c.ca_der().unwrap(),
            &std::fs::read(&admin.cert).unwrap(),
            &std::fs::read(&admin.key).unwrap(),
        )
    }

    /// Listens on `addr` with the server identity `cert_pem`/`key_pem`, requiring client certificates from `ca_der`.
    pub fn start(addr: &str, ca_der: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca_der.to_vec())).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let chain = tessera_proto::pem_files::all_certs(cert_pem)
            .unwrap()
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let key = tessera_proto::pem_files::pkcs8_key(key_pem).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.expose(<[u8]>::to_vec)));
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let script = Arc::new(Mutex::new(Script::default()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let std_listener = std::net::TcpListener::bind(addr).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let shared = script.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut stopped => return,
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    };
                    let acceptor = acceptor.clone();
                    let script = shared.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |req| {
                            let script = script.clone();
                            async move { Ok::<_, hyper::Error>(answer(&script, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        });
        Self {
            script,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Answers `GET path` with `value` from now on.
    pub fn answer(&self, path: &str, value: serde_json::Value) {
        self.script
            .lock()
            .unwrap()
            .answers
            .insert(path.to_owned(), value);
    }

    /// Answers as an honest relay with no credentials yet would: `agents` (views from `agent_view`) certified, no
    /// credentials, no revocation list.
    pub fn answer_fleet(&self, agents: serde_json::Value) {
        self.answer("/v1/agents", agents);
        self.answer("/v1/credentials", serde_json::json!([]));
        self.answer("/v1/revocations", serde_json::Value::Null);
    }

    /// Answers `method path` (a write) with `status` and `value` from now on (it is still recorded as received:
    /// a relay that stores the write and then reports an error).
    pub fn answer_write(&self, method: &str, path: &str, status: u16, value: serde_json::Value) {
        self.script
            .lock()
            .unwrap()
            .writes
            .insert((method.to_owned(), path.to_owned()), (status, value));
    }

    /// Answers the next `n` writes as scripted, and every write after them 503 `busy` (a relay failing half-way
    /// through an import); `None` lifts the limit.
    pub fn fail_writes_after(&self, n: Option<usize>) {
        self.script.lock().unwrap().writes_left = n;
    }

    /// Every request received since the last call, and forgets them.
    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut self.script.lock().unwrap().received)
    }
}

impl Drop for LyingAdmin {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn answer(
    script: &Mutex<Script>,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let reply = {
        let mut s = script.lock().unwrap();
        s.received.push(Received {
            method: method.clone(),
            path: path.clone(),
            body,
        });
        if method == "GET" {
            s.answers.get(&path).cloned().map(|v| (200, v))
        } else if s.writes_left == Some(0) {
            Some((
                503,
                serde_json::json!({ "error": "busy", "message": "the relay is failing" }),
            ))
        } else {
            s.writes_left = s.writes_left.map(|n| n - 1);
            Some(
                s.writes
                    .get(&(method.clone(), path.clone()))
                    .cloned()
                    .unwrap_or((200, serde_json::json!({ "ok": true }))),
            )
        }
    };
    let (status, value) = match reply {
        Some(v) => v,
        None => (
            404,
            serde_json::json!({ "error": "invalid", "message": "not scripted" }),
        ),
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&value).unwrap())))
        .unwrap()
}
