//! Who may use the dashboard: the holder of the per-run login token printed at start, exchanged once at `/login`
//! for a separate random session value in a `SameSite=Strict`, `HttpOnly`, host-only cookie. Other users of the
//! workstation reach the loopback port too, and any web page the operator visits can send requests to it: without
//! the cookie nothing is shown or done, every action also needs the `X-Tessera-Dashboard` header (which a
//! cross-site form cannot send), and the `Host` header must be the run's random host name (`t<hex>.localhost:PORT`:
//! a DNS-rebinding page has another, and the cookie, bound to that name, is not sent to other services on the
//! loopback address; docs/operations.md, "Dashboard").

use axum::http::{header, HeaderMap, Method};
use zeroize::Zeroizing;

/// A random per-run secret (the login token, the session value): never in `Debug`, wiped when dropped.
pub(crate) struct Secret(Zeroizing<String>);

impl Secret {
    /// 244 random bits (two version-4 UUIDs), as 64 hex digits.
    pub(crate) fn random() -> Self {
        Self(Zeroizing::new(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )))
    }

    /// The secret's text (for the login address and the cookie only).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `other` is this secret, compared in time independent of where they differ.
    pub(crate) fn matches(&self, other: &str) -> bool {
        same(self.0.as_bytes(), other.as_bytes())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The run's random host name, `t` and 32 hex digits under `.localhost` (browsers resolve every `*.localhost` name
/// to the loopback address themselves).
pub(crate) fn random_host() -> String {
    format!("t{}.localhost", uuid::Uuid::new_v4().simple())
}

/// The cookie's name.
pub(crate) const COOKIE: &str = "tessera_dashboard";
/// The header every action must carry.
pub(crate) const ACTION_HEADER: &str = "x-tessera-dashboard";

/// Whether `a` equals `b`, in time independent of where they differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session value the request's cookie carries, if any.
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

/// Why a request is refused, or `None`. `host` is the only `Host` header accepted (`NAME:PORT`), on `/login` too.
pub(crate) fn refusal(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    session: &Secret,
    host: &str,
) -> Option<&'static str> {
    let given = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if given != Some(host) {
        return Some(
            "the Host header does not name the dashboard's address: open the address `tessera dashboard` printed",
        );
    }
    if path == "/login" {
        return None;
    }
    if !cookie_token(headers).is_some_and(|t| session.matches(t)) {
        return Some("open the address `tessera dashboard` printed (it carries the login token)");
    }
    if *method != Method::GET && headers.get(ACTION_HEADER).is_none() {
        return Some("actions are sent by the dashboard's page");
    }
    None
}

/// Takes the login token out of `slot` when `given` is it: true once, then never again (single use).
pub(crate) fn take_login(slot: &std::sync::Mutex<Option<Secret>>, given: &str) -> bool {
    let mut login = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let matches = login.as_ref().is_some_and(|t| t.matches(given));
    if matches {
        *login = None;
    }
    matches
}
