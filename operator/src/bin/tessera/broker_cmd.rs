//! `tessera broker-config mosquitto`: the org broker's Mosquitto configuration and ACL
//! (`tessera_proto::broker_config`, the one generator the tests and `deploy/mosquitto/` use too), printed or
//! written to a directory as `tessera.conf` and `tessera.acl`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tessera_proto::broker_config::MosquittoSite;

/// The broker software to configure.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum BrokerConfigCmd {
    /// Mosquitto: a TLS listener with the org CA, client certificates required and named by their CN, the pattern
    /// ACL (agents on their own topics only, the relays on all), the protocol's packet limit.
    Mosquitto(MosquittoArgs),
}

/// Where the files go and what they name; the defaults are the paths of docs/operations.md.
#[derive(clap::Args, Debug)]
pub(crate) struct MosquittoArgs {
    /// Write tessera.conf (for /etc/mosquitto/conf.d/) and tessera.acl into DIR instead of printing both.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The TLS port.
    #[arg(long, default_value_t = 8883)]
    port: u16,
    /// The address to listen on (default: every address).
    #[arg(long)]
    bind: Option<String>,
    /// The org CA certificate on the broker host.
    #[arg(long, default_value = "/etc/tessera/org-ca.pem")]
    ca_file: String,
    /// The broker's certificate (`tessera ca issue-service --name broker`).
    #[arg(long, default_value = "/etc/mosquitto/certs/broker.pem")]
    cert_file: String,
    /// The broker's key.
    #[arg(long, default_value = "/etc/mosquitto/certs/broker.key")]
    key_file: String,
    /// Where tessera.acl is installed on the broker host.
    #[arg(long, default_value = "/etc/mosquitto/tessera.acl")]
    acl_file: String,
    /// The account Mosquitto drops to when started as root.
    #[arg(long, default_value = "mosquitto")]
    user: String,
    /// A relay's service certificate CN (its `[broker] cert`), repeatable: it gets the relay's rights.
    #[arg(long = "relay", value_name = "CN", default_value = "relay-1")]
    relays: Vec<String>,
}

impl MosquittoArgs {
    fn site(&self) -> Result<MosquittoSite, String> {
        for r in &self.relays {
            if !tessera_proto::ids::is_valid_name(r) {
                return Err(format!("--relay {r:?}: a CN of [A-Za-z0-9_-]{{1,128}}"));
            }
        }
        for (flag, v) in [
            ("--ca-file", &self.ca_file),
            ("--cert-file", &self.cert_file),
            ("--key-file", &self.key_file),
            ("--acl-file", &self.acl_file),
            ("--user", &self.user),
        ] {
            if v.is_empty() || v.chars().any(|c| c.is_control() || c == '#') {
                return Err(format!(
                    "{flag} {v:?}: empty, or a control character or `#`"
                ));
            }
        }
        if let Some(b) = &self.bind {
            if b.is_empty()
                || b.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '#')
            {
                return Err(format!("--bind {b:?}: not an address"));
            }
        }
        Ok(MosquittoSite {
            port: self.port,
            bind: self.bind.clone(),
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            acl_file: self.acl_file.clone(),
            user: self.user.clone(),
            relay_users: self.relays.clone(),
        })
    }
}

/// Runs `broker-config`.
pub(crate) fn broker_config(cmd: &BrokerConfigCmd) -> ExitCode {
    let BrokerConfigCmd::Mosquitto(args) = cmd;
    let site = match args.site() {
        Ok(s) => s,
        Err(e) => return crate::fail(2, &e),
    };
    let Some(dir) = &args.out else {
        let text = format!(
            "# ---- tessera.conf (/etc/mosquitto/conf.d/tessera.conf)\n{}\n# ---- tessera.acl ({})\n{}",
            site.conf(),
            site.acl_file,
            site.acl()
        );
        return match std::io::stdout().lock().write_all(text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => crate::fail(1, &format!("stdout: {e}")),
        };
    };
    match write_files(dir, &site) {
        Ok(()) => {
            eprintln!(
                "tessera: wrote {0}/tessera.conf (for /etc/mosquitto/conf.d/) and {0}/tessera.acl (for {1})",
                dir.display(),
                site.acl_file
            );
            ExitCode::SUCCESS
        }
        Err(e) => crate::fail(1, &format!("{}: {e}", dir.display())),
    }
}

fn write_files(dir: &Path, site: &MosquittoSite) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("tessera.conf"), site.conf())?;
    std::fs::write(dir.join("tessera.acl"), site.acl())
}
