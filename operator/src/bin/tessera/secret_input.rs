//! Where `cred put`, `cred rotate` and `cred import` read a secret: a file, standard input, or, when standard input
//! is a terminal, a prompt that does not echo what is typed. An empty secret is refused.

use std::io::IsTerminal as _;
use std::path::Path;

use tessera_proto::secret::SecretBytes;

/// The secret for `name` from `file`, else from standard input (without echo on a terminal).
pub(crate) fn read_secret(name: &str, file: Option<&Path>) -> Result<SecretBytes, String> {
    let (secret, source) = match file {
        Some(f) => (read_all(std::fs::File::open(f)), f.display().to_string()),
        None if std::io::stdin().is_terminal() => (prompt(name), "the terminal".to_owned()),
        None => (read_all(Ok(std::io::stdin())), "standard input".to_owned()),
    };
    let secret = secret.map_err(|e| format!("reading the secret for {name} from {source}: {e}"))?;
    if secret.expose(|b| b.strip_suffix(b"\n").unwrap_or(b).is_empty()) {
        return Err(format!(
            "the secret for {name} from {source} is empty: nothing was signed or sent; give it with --file FILE, \
             pipe it in (printf '%s' \"$SECRET\" | tessera cred put {name}), or type it when asked at a terminal"
        ));
    }
    Ok(secret)
}

fn read_all(r: std::io::Result<impl std::io::Read>) -> std::io::Result<SecretBytes> {
    let mut buf = Vec::new();
    let read = r.and_then(|mut h| h.read_to_end(&mut buf));
    // Owned by the secret type before any error returns, so it is zeroized on every path.
    let secret = SecretBytes::new(buf);
    read.map(|_| secret)
}

/// Asks on the terminal, without echo; the typed line is moved, not copied, into the secret.
fn prompt(name: &str) -> std::io::Result<SecretBytes> {
    rpassword::prompt_password(format!("secret for {name} (not echoed): "))
        .map(|s| SecretBytes::new(s.into_bytes()))
}
