//! The agent's local API: a request line as the server parses it
//! (`tessera_agent::local_api::protocol::parse_request_line`), and the same bytes as an answer header line as the
//! client parses it (`Header`). Local callers are any process allowed to connect to the socket.
//!
//! Checked beyond "no panic": an accepted request is at most `MAX_REQUEST_BYTES` and newline-terminated, and
//! re-serialised (as the client sends it) parses to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_agent::local_api::protocol::{parse_request_line, Header, MAX_REQUEST_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_request_line(data) {
        assert!(data.len() <= MAX_REQUEST_BYTES && data.ends_with(b"\n"));
        let mut line = serde_json::to_vec(&req).expect("a request serialises");
        line.push(b'\n');
        assert_eq!(
            parse_request_line(&line).expect("a re-serialised request parses"),
            req
        );
    }
    if let Ok(header) = serde_json::from_slice::<Header>(data) {
        let json = serde_json::to_vec(&header).expect("a header serialises");
        let again: Header = serde_json::from_slice(&json).expect("a re-serialised header parses");
        assert_eq!(again, header);
    }
});
