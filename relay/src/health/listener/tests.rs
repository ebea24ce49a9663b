use axum::routing::get;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::*;

async fn get_ok(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text
}

async fn start(limits: Limits) -> (std::net::SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/healthz", get(|| async { "ok\n" }));
    let cancel = CancellationToken::new();
    tokio::spawn(serve(listener, app, limits, cancel.clone()));
    (addr, cancel)
}

#[tokio::test]
async fn an_idle_client_holding_the_only_slot_is_cut_at_the_header_deadline() {
    let (addr, cancel) = start(Limits {
        connections: 1,
        header_read: Duration::from_millis(200),
        connection: Duration::from_secs(3600),
    })
    .await;
    // Takes the only slot and sends nothing.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let answer = get_ok(addr).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The idle one was closed by the server.
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest).await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_clients_than_slots_all_get_answers() {
    let (addr, cancel) = start(Limits {
        connections: 2,
        ..Limits::default()
    })
    .await;
    let clients: Vec<_> = (0..40).map(|_| tokio::spawn(get_ok(addr))).collect();
    for c in clients {
        let answer = c.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    cancel.cancel();
}
