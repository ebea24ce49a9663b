//! Who may use the dashboard: the holder of the per-run token printed at start (exchanged once at `/login` for a
//! `SameSite=Strict`, `HttpOnly` cookie). Other users of the workstation reach the loopback port too, and any web
//! page the operator visits can send requests to it: without the cookie nothing is shown or done, every action
//! also needs the `X-Tessera-Dashboard` header (which a cross-site form cannot send), and the `Host` header must
//! name the address listened on (a DNS-rebinding page has another).

use axum::http::{header, HeaderMap, Method};

/// The run's token: shown once (the login address), never in `Debug`.
#[derive(Clone)]
pub(crate) struct Token(pub(crate) String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The cookie's name.
pub(crate) const COOKIE: &str = "tessera_dashboard";
/// The header every action must carry.
pub(crate) const ACTION_HEADER: &str = "x-tessera-dashboard";

/// Whether `a` equals `b`, in time independent of where they differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token the request's cookie carries, if any.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// Why a request is refused, or `None`.
pub(crate) fn refusal(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    token: &str,
    hosts: &[String],
) -> Option<&'static str> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !host.is_some_and(|h| hosts.iter().any(|x| x == h)) {
        return Some("the Host header does not name the dashboard's address");
    }
    if path == "/login" {
        return None;
    }
    if !cookie_token(headers).is_some_and(|t| same(t.as_bytes(), token.as_bytes())) {
        return Some("open the address `tessera dashboard` printed (it carries the session token)");
    }
    if *method != Method::GET && headers.get(ACTION_HEADER).is_none() {
        return Some("actions are sent by the dashboard's page");
    }
    None
}
