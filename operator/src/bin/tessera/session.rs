//! What every command that talks to the relay shares: the operator's files, the admin client, output and exit
//! codes.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tessera_operator::client::{AdminClient, ClientError};
use tessera_operator::cred;
use tessera_proto::cert::{IdentityKey, PinnedCa};
use tessera_proto::ids::OperatorId;
use tessera_proto::secret::SecretBytes;

use crate::cli::Conn;
use crate::fail;

pub(crate) struct OperatorFiles {
    pub(crate) ca: PinnedCa,
    pub(crate) key: IdentityKey,
    pub(crate) cert: Vec<u8>,
    pub(crate) id: OperatorId,
    pub(crate) dir: PathBuf,
    pub(crate) client: AdminClient,
}

impl OperatorFiles {
    /// What signs and seals on this workstation.
    pub(crate) fn signer(&self) -> cred::Operator<'_> {
        cred::Operator {
            ca: &self.ca,
            id: self.id.clone(),
            key: &self.key,
            cert: &self.cert,
            dir: &self.dir,
        }
    }
}

pub(crate) fn load_operator(conn: &Conn) -> Result<OperatorFiles, String> {
    let read = |n: &str| {
        std::fs::read(conn.operator_dir.join(n)).map_err(|e| {
            format!(
                "{}: {e} (the operator directory is --operator-dir or TESSERA_OPERATOR_DIR; `tessera ca \
                 issue-operator` creates it)",
                conn.operator_dir.join(n).display()
            )
        })
    };
    let first = |b: &[u8]| tessera_proto::pem_files::first_cert(b).map_err(|e| e.to_string());
    let ca_der = first(&read("ca.pem")?)?;
    let ca = PinnedCa::from_der(&ca_der).map_err(|e| e.to_string())?;
    let cert_pem = read("operator.pem")?;
    let key_pem = read("operator.key")?;
    let cert = first(&cert_pem)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let verified = ca
        .verify_operator(
            &cert,
            now,
            &tessera_proto::statement::RevocationList::empty(),
        )
        .map_err(|e| format!("operator certificate: {e}"))?;
    let key = tessera_proto::pem_files::pkcs8_key(&key_pem).map_err(|e| e.to_string())?;
    let key = IdentityKey::from_pkcs8_der(&key).map_err(|e| e.to_string())?;
    let tls = tessera_operator::tls::client_config(&ca_der, &conn.relay_name, &cert_pem, &key_pem)?;
    Ok(OperatorFiles {
        ca,
        key,
        cert,
        id: verified.operator_id,
        dir: conn.operator_dir.clone(),
        client: AdminClient::new(&conn.relay, tls)
            .with_timeout(std::time::Duration::from_secs(conn.timeout.max(1))),
    })
}

pub(crate) fn api_fail(e: &ClientError) -> ExitCode {
    match e {
        ClientError::Api { .. } => fail(3, &e.to_string()),
        _ => fail(1, &e.to_string()),
    }
}

#[allow(clippy::print_stdout)]
pub(crate) fn print(json: bool, v: &serde_json::Value, text: &str) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{text}");
    }
}

pub(crate) async fn list(
    conn: &Conn,
    path: &str,
    json: bool,
    row: impl Fn(&serde_json::Value) -> String,
) -> ExitCode {
    list_where(conn, path, json, |_| true, row).await
}

/// Lists the entries of `path` that `keep` keeps, as JSON or one `row` per line.
pub(crate) async fn list_where(
    conn: &Conn,
    path: &str,
    json: bool,
    keep: impl Fn(&serde_json::Value) -> bool,
    row: impl Fn(&serde_json::Value) -> String,
) -> ExitCode {
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    match op.client.get(path).await {
        Ok(v) => {
            let kept: Vec<serde_json::Value> = v
                .as_array()
                .map(|a| a.iter().filter(|e| keep(e)).cloned().collect())
                .unwrap_or_default();
            // Every row is the relay's text: escaped, so it cannot forge or hide lines on the terminal.
            let text = kept
                .iter()
                .map(|v| tessera_operator::client::escape_control(&row(v)))
                .collect::<Vec<_>>()
                .join("\n");
            print(json, &serde_json::Value::Array(kept), &text);
            ExitCode::SUCCESS
        }
        Err(e) => api_fail(&e),
    }
}

pub(crate) fn read_secret(file: Option<&Path>) -> Result<SecretBytes, String> {
    let mut buf = Vec::new();
    let r = match file {
        Some(f) => std::fs::File::open(f).and_then(|mut h| h.read_to_end(&mut buf)),
        None => std::io::stdin().read_to_end(&mut buf),
    };
    let secret = SecretBytes::new(buf);
    r.map_err(|e| e.to_string())?;
    Ok(secret)
}

pub(crate) async fn simple<F, Fut>(conn: &Conn, json: bool, f: F) -> ExitCode
where
    F: FnOnce(AdminClient) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, ClientError>>,
{
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    match f(op.client).await {
        Ok(v) => {
            print(json, &v, "ok");
            ExitCode::SUCCESS
        }
        Err(e) => api_fail(&e),
    }
}
