//! What the wire doubles share: a TLS client configuration from DER, and an MQTT client whose event loop runs in its
//! own task, hands every publication to a channel and keeps polling through errors.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tokio::sync::mpsc;

/// How long to wait for the broker to acknowledge the subscriptions.
pub const SUBSCRIBE_WAIT: Duration = Duration::from_secs(15);

/// Why a client could not connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    /// TLS configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The MQTT client.
    #[error("MQTT: {0}")]
    Client(#[from] rumqttc::ClientError),
    /// The broker did not acknowledge the subscriptions.
    #[error("the broker did not acknowledge the subscriptions within {SUBSCRIBE_WAIT:?}")]
    NotSubscribed,
}

/// Publications received: (topic, payload).
pub type Inbox = mpsc::UnboundedReceiver<(String, Vec<u8>)>;

/// A client configuration trusting `ca_der` and presenting `cert_der` with its PKCS#8 key.
pub fn client_tls(
    ca_der: &[u8],
    cert_der: Vec<u8>,
    key_pkcs8: Vec<u8>,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![rustls::pki_types::CertificateDer::from(cert_der)],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key_pkcs8.into()),
            )?,
    ))
}

/// Connects with `opts` over `tls`, subscribes to `topics` (QoS 1) and waits for the acknowledgements.
pub async fn connect(
    mut opts: MqttOptions,
    tls: Arc<rustls::ClientConfig>,
    topics: &[String],
) -> Result<(AsyncClient, Inbox), MqttError> {
    opts.set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(4 << 20, 4 << 20)
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(_) => {}
                Err(_) => {
                    if tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    for t in topics {
        client.subscribe(t.as_str(), QoS::AtLeastOnce).await?;
    }
    for _ in topics {
        if !matches!(
            tokio::time::timeout(SUBSCRIBE_WAIT, ready_rx.recv()).await,
            Ok(Some(()))
        ) {
            return Err(MqttError::NotSubscribed);
        }
    }
    Ok((client, rx))
}
