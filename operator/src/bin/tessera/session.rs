//! What every command that talks to the relay shares: the operator's files, the admin client, output and exit
//! codes.

use std::path::PathBuf;
use std::process::ExitCode;

use tessera_operator::client::{AdminClient, ClientError};
use tessera_operator::cred;
use tessera_proto::cert::{IdentityKey, PinnedCa};
use tessera_proto::ids::OperatorId;

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
    // Each failure names the file at fault.
    let at = |n: &str, e: &dyn std::fmt::Display| {
        format!(
            "{}: {e} (rewrite it from `tessera ca issue-operator`)",
            conn.operator_dir.join(n).display()
        )
    };
    let first = |n: &str, b: &[u8]| tessera_proto::pem_files::first_cert(b).map_err(|e| at(n, &e));
    let ca_der = first("ca.pem", &read("ca.pem")?)?;
    let ca = PinnedCa::from_der(&ca_der).map_err(|e| at("ca.pem", &e))?;
    let cert_pem = read("operator.pem")?;
    let key_pem = read("operator.key")?;
    let cert = first("operator.pem", &cert_pem)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let verified = ca
        .verify_operator(
            &cert,
            now,
            &tessera_proto::statement::RevocationList::empty(),
        )
        .map_err(|e| {
            format!(
                "{}: operator certificate: {e} (a new one: `tessera ca issue-operator`)",
                conn.operator_dir.join("operator.pem").display()
            )
        })?;
    let key = tessera_proto::pem_files::pkcs8_key(&key_pem).map_err(|e| at("operator.key", &e))?;
    let key = IdentityKey::from_pkcs8_der(&key).map_err(|e| at("operator.key", &e))?;
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
    let kind = match e {
        ClientError::Api { .. } => return fail(3, &e.to_string()),
        ClientError::Timeout { .. } => "timeout",
        _ => "unreachable",
    };
    crate::json_output::fail_kind(1, kind, &e.to_string())
}

#[allow(clippy::print_stdout)]
pub(crate) fn print(json: bool, v: &serde_json::Value, text: &str) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{text}");
    }
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
