//! `ca ...`: the org CA's directory, and the copies it leaves in the operator directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tessera_operator::{ca, issued, revocations};
use tessera_proto::cert::CertSerial;

use crate::cli::{CaCmd, Conn};
use crate::fail;
use crate::session::{api_fail, load_operator, print};

pub(crate) fn ca_cmd(c: CaCmd, json: bool) -> ExitCode {
    let r = match c {
        CaCmd::Init { dir, org, days } => ca::init(&dir, &org, days).map(|()| {
            (
                format!("CA created in {}", dir.display()),
                serde_json::json!({ "created": "ca", "dir": dir, "org": org }),
            )
        }),
        CaCmd::IssueOperator {
            dir,
            id,
            out_dir,
            days,
        } => ca::issue_operator(&dir, &id, &out_dir, days).map(|()| {
            (
                format!("operator {id} written to {}", out_dir.display()),
                serde_json::json!({ "created": "operator", "id": id, "dir": out_dir }),
            )
        }),
        CaCmd::IssueService {
            dir,
            name,
            dns,
            ip,
            out_dir,
            days,
        } => ca::issue_service(&dir, &name, &dns, &ip, &out_dir, days).map(|()| {
            (
                format!(
                    "service certificate {name} written to {}",
                    out_dir.display()
                ),
                serde_json::json!({ "created": "service", "name": name, "dir": out_dir }),
            )
        }),
        // Dispatched to `ca_revoke`, `issue_agent` and `ca_renew` before this function is called.
        CaCmd::Revoke { .. } | CaCmd::IssueAgent { .. } | CaCmd::Renew { .. } => Err(
            ca::CaError::Invalid("handled by ca_revoke, issue_agent and ca_renew".into()),
        ),
    };
    match r {
        Ok((msg, v)) => {
            // The text goes to standard error as it always has; with --json the result is on standard output.
            eprintln!("tessera: {msg}");
            if json {
                print(true, &v, "");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(2, &e.to_string()),
    }
}

/// The arguments of `ca issue-agent`.
#[derive(Debug)]
pub(crate) struct IssueAgent<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) request: &'a Path,
    pub(crate) out: &'a Path,
    pub(crate) lifetime_secs: i64,
    pub(crate) replace: bool,
    pub(crate) push: bool,
}

/// `ca issue-agent`: issues, records in the registry, copies the registry (and a new revocation list) into the
/// operator directory, and with `--push` sends the new list to the relay.
pub(crate) async fn issue_agent(a: &IssueAgent<'_>, conn: &Conn, json: bool) -> ExitCode {
    let issued = match ca::issue_agent(a.dir, a.request, a.out, a.lifetime_secs, a.replace) {
        Ok(i) => i,
        Err(e) => return fail(2, &e.to_string()),
    };
    let mut msg = format!(
        "certificate {} for {} written to {}",
        issued.serial.as_str(),
        issued.agent.as_str(),
        a.out.display()
    );
    if !issued.replaced.is_empty() {
        let serials: Vec<&str> = issued.replaced.iter().map(CertSerial::as_str).collect();
        let _ = write!(msg, "; replaced and revoked {}", serials.join(", "));
    }
    let od = &conn.operator_dir;
    if operator_dir_of_this_ca(a.dir, od) {
        let copied = issued::Registry::load(a.dir)
            .and_then(|r| r.unwrap_or_default().save(od))
            .map_err(|e| e.to_string())
            .and_then(|()| match &issued.revocations {
                Some(list) => revocations::write_dir_copy(od, list).map_err(|e| e.to_string()),
                None => Ok(()),
            });
        if let Err(e) = copied {
            return fail(1, &e);
        }
        let _ = write!(msg, "; registry copied to {}", od.display());
    } else {
        let _ = write!(
            msg,
            "\ntessera: warning: {} is not an operator directory of this CA: issued.json was not copied there; give \
             --operator-dir (TESSERA_OPERATOR_DIR), or copy {} to every operator directory: sealing needs it",
            od.display(),
            a.dir.join(issued::FILE).display()
        );
    }
    match (&issued.revocations, a.push) {
        (Some(list), true) => {
            let op = match load_operator(conn) {
                Ok(o) => o,
                Err(e) => return fail(2, &e),
            };
            let body = serde_json::to_value(list).unwrap_or_default();
            if let Err(e) = op.client.post("/v1/revocations", &body).await {
                eprintln!("tessera: {msg}");
                return api_fail(&e);
            }
            msg.push_str("; revocation list pushed");
        }
        (Some(_), false) => msg.push_str(
            "\ntessera: warning: the replaced certificate is revoked in the CA's list only; until the relay and every \
             operator directory have that list, a relay can keep presenting the old certificate: push it now with \
             `tessera ca revoke --push --dir CA-DIR` and copy revocations.json and issued.json to other operators",
        ),
        _ => {}
    }
    eprintln!("tessera: {msg}");
    if json {
        let replaced: Vec<&str> = issued.replaced.iter().map(CertSerial::as_str).collect();
        let v = serde_json::json!({ "agent": issued.agent.as_str(), "serial": issued.serial.as_str(),
            "cert": a.out, "replaced": replaced, "pushed": a.push && issued.revocations.is_some() });
        print(true, &v, "");
    }
    ExitCode::SUCCESS
}

pub(crate) async fn ca_revoke(
    dir: &Path,
    certs: &[PathBuf],
    push: bool,
    conn: &Conn,
    json: bool,
) -> ExitCode {
    let mut serials = Vec::new();
    for c in certs {
        match ca::serial_of(dir, c) {
            Ok(s) => serials.push(s),
            Err(e) => return fail(2, &e.to_string()),
        }
    }
    let signed = match ca::revoke_for_cause(dir, &serials) {
        Ok(s) => s,
        Err(e) => return fail(2, &e.to_string()),
    };
    let serial = signed
        .parse_unverified(tessera_proto::statement::REVOCATION_KIND)
        .map(|l| l.serial)
        .unwrap_or_default();
    // This workstation's operator directory keeps a copy: `cred put` then seals by it even if the relay withholds it.
    let copied = operator_dir_of_this_ca(dir, &conn.operator_dir);
    if copied {
        if let Err(e) = revocations::write_dir_copy(&conn.operator_dir, &signed) {
            return fail(1, &e.to_string());
        }
    }
    if push {
        let op = match load_operator(conn) {
            Ok(o) => o,
            Err(e) => return fail(2, &e),
        };
        let body = serde_json::to_value(&signed).unwrap_or_default();
        if let Err(e) = op.client.post("/v1/revocations", &body).await {
            return api_fail(&e);
        }
    }
    let v = serde_json::json!({
        "serial": serial, "revoked": serials, "pushed": push, "operator_copy": copied
    });
    print(
        json,
        &v,
        &format!(
            "revocation list {serial} written to {}{}{}",
            dir.join(revocations::FILE).display(),
            if copied {
                format!(
                    " and {}",
                    conn.operator_dir.join(revocations::FILE).display()
                )
            } else {
                String::new()
            },
            if push { ", and pushed" } else { "" }
        ),
    );
    ExitCode::SUCCESS
}

/// Whether `operator_dir` is another directory holding an operator identity under the CA in `ca_dir`.
pub(crate) fn operator_dir_of_this_ca(ca_dir: &Path, operator_dir: &Path) -> bool {
    let same_dir = match (ca_dir.canonicalize(), operator_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => return false,
    };
    let same_ca = match (
        std::fs::read(ca_dir.join("ca.pem")),
        std::fs::read(operator_dir.join("ca.pem")),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    !same_dir && same_ca && operator_dir.join("operator.pem").is_file()
}
