//! A hostile broker: it accepts every connection (TLS with a service certificate of the org, CONNACK) and then sends
//! a PUBLISH longer than the agent accepts, as a broker redelivering an oversized message on a persistent session
//! would. rumqttc fails the connection on it; the agent must back off over the streak (a CONNACK alone is not a
//! healthy connection), not reconnect in a tight loop, and log the size error once.
//!
//! The fake speaks just enough MQTT 3.1.1: it reads the CONNECT, answers CONNACK, writes the oversized PUBLISH's
//! fixed header and a few bytes, then reads until the agent hangs up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_system_tests::broker::service_identity;
use tessera_system_tests::wire_world::{Agent, Org};

const BIN: &str = env!("CARGO_BIN_EXE_tessera-agent");

/// The window connection attempts are counted in.
const WINDOW: Duration = Duration::from_secs(5);

/// With the shipped backoff (500 ms to 30 s, full jitter), at most this many connections fit in [`WINDOW`] but for
/// a vanishing chance (about 5 in 10,000: six consecutive draws near their floor). A loop that resets the backoff
/// at every CONNACK connects every 500 ms: 10 times.
const MAX_CONNECTS: usize = 6;

fn der(path: &std::path::Path) -> Vec<u8> {
    pem::parse(std::fs::read(path).unwrap())
        .unwrap()
        .into_contents()
}

/// The remaining-length field of an MQTT fixed header.
fn remaining_length(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = u8::try_from(n % 128).unwrap();
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return out;
        }
    }
}

/// Reads one MQTT packet (fixed header, remaining length, body) and returns its type nibble.
fn read_packet(s: &mut impl Read) -> std::io::Result<u8> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    let kind = b[0] >> 4;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut d = [0u8; 1];
        s.read_exact(&mut d)?;
        len |= usize::from(d[0] & 0x7f) << shift;
        shift += 7;
        if d[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(kind)
}

fn serve(tcp: TcpStream, tls: Arc<rustls::ServerConfig>) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    if read_packet(&mut s)? != 1 {
        return Ok(());
    }
    // CONNACK, session present, accepted.
    s.write_all(&[0x20, 0x02, 0x01, 0x00])?;
    // PUBLISH QoS 1, 3 MiB long: over the agent's incoming limit (2 MiB + 4 KiB).
    let mut publish = vec![0x32];
    publish.extend(remaining_length(3 * 1024 * 1024));
    publish.extend_from_slice(&[0, 29]);
    publish.extend_from_slice(b"tessera/v1/agents/edge-1/down");
    publish.extend_from_slice(&[0, 1]);
    publish.extend_from_slice(&[b'x'; 64]);
    s.write_all(&publish)?;
    s.flush()?;
    let mut sink = [0u8; 4096];
    while s.read(&mut sink).is_ok_and(|n| n > 0) {}
    Ok(())
}

struct FakeBroker {
    port: u16,
    connects: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn start_fake_broker(dir: &std::path::Path, org: &Org) -> FakeBroker {
    let ident = service_identity(dir, &org.ca, "broker");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(der(&ident.key).into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(der(&ident.cert))],
                key,
            )
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let connects = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (c, st) = (connects.clone(), stop.clone());
    std::thread::spawn(move || {
        while !st.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((tcp, _)) => {
                    c.fetch_add(1, Ordering::SeqCst);
                    tcp.set_nonblocking(false).unwrap();
                    let tls = tls.clone();
                    std::thread::spawn(move || {
                        let _ = serve(tcp, tls);
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    FakeBroker {
        port,
        connects,
        stop,
    }
}

#[test]
fn an_oversized_packet_from_the_broker_is_dropped_with_backoff_not_a_reconnect_loop() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let broker = start_fake_broker(dir.path(), &org);
    // The shipped backoff bounds (no reconnect keys: the defaults).
    let mut agent = Agent::on_port(
        std::path::Path::new(BIN),
        dir.path(),
        "edge-1",
        broker.port,
        "",
        "",
    );
    agent.enroll(&org);
    agent.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    while broker.connects.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the agent never connected: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(WINDOW);
    let connects = broker.connects.load(Ordering::SeqCst);
    agent.kill();
    let log = agent.log();
    assert!(
        connects >= 2,
        "the agent reconnects after the oversized packet: {log}"
    );
    assert!(
        connects <= MAX_CONNECTS,
        "{connects} connections in {WINDOW:?}: a reconnect loop\n{log}"
    );
    let size_errors = log
        .matches("the broker sent a packet larger than this agent accepts")
        .count();
    assert_eq!(size_errors, 1, "logged once per streak\n{log}");
}
