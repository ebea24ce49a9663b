//! Which MQTT 5 connection failures mean "this broker does not speak 5" (the `auto` fallback's trigger).
#![allow(clippy::unwrap_used)]

use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
use rumqttc::v5::{ConnectionError, StateError};

use super::refuses_v5;

#[test]
fn a_refused_version_or_an_unreadable_answer_is_a_refusal_of_5_and_nothing_else_is() {
    for code in [
        ConnectReturnCode::RefusedProtocolVersion,
        ConnectReturnCode::UnsupportedProtocolVersion,
    ] {
        assert!(refuses_v5(&ConnectionError::ConnectionRefused(code)));
    }
    assert!(refuses_v5(&ConnectionError::MqttState(
        StateError::Deserialization(rumqttc::v5::mqttbytes::Error::MalformedPacket)
    )));
    // A broker that speaks 5 and refuses this relay, or one that is down, is not a reason to speak 3.1.1.
    for code in [
        ConnectReturnCode::NotAuthorized,
        ConnectReturnCode::BadUserNamePassword,
        ConnectReturnCode::ServerUnavailable,
    ] {
        assert!(!refuses_v5(&ConnectionError::ConnectionRefused(code)));
    }
    assert!(!refuses_v5(&ConnectionError::Io(std::io::Error::from(
        std::io::ErrorKind::ConnectionRefused
    ))));
    // rumqttc reports a connection reset (or a TLS alert, a refused certificate) while reading as a
    // deserialization error wrapping the I/O error: not a word about the version.
    assert!(!refuses_v5(&ConnectionError::MqttState(
        StateError::Deserialization(rumqttc::v5::mqttbytes::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        )))
    )));
}
