//! `tessera`: the operator's commands, on the operator's workstation (CA, sealing, statements, the admin client).
//!
//! Exit codes: 0 success; 1 failure; 2 usage or input error, or the relay's answers contradict what was signed
//! (nothing was signed or sealed); 3 the relay refused (invalid, unauthorized, busy); 4 `audit verify` found the
//! chain broken or a recorded delivery, purge or rotation without a valid receipt (`cred show`: a state without one).
//! With `--json`, a failure is reported as one JSON line on standard error (`json_output`).
#![forbid(unsafe_code)]

mod broker_cmd;
mod ca_cmds;
mod cli;
mod cred_cmds;
mod dashboard_cmd;
mod fleet_cmds;
mod json_output;
mod ls_cmds;
mod resolve;
mod retry_cmd;
mod rotation_cmds;
mod secret_input;
mod session;
mod show_cmd;
mod table;
mod version;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser};

use ca_cmds::{ca_cmd, ca_revoke};
use cli::{AgentsCmd, AuditCmd, CaCmd, Cli, Command, ListCmd};
use cred_cmds::{cred_cmd, rescope};
use fleet_cmds::{audit_verify, job_cmd};
use tessera_operator::cred;

pub(crate) fn fail(code: u8, msg: &str) -> ExitCode {
    json_output::fail_kind(code, json_output::kind_of(code), msg)
}

/// The parsed command line; a usage error is reported as JSON when `--json` was given.
fn parse() -> Result<Cli, ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    Cli::try_parse_from(&args).map_err(|e| {
        use clap::error::ErrorKind;
        let shown = matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        if shown || !json_output::requested(&args) {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
        json_output::set(true);
        let text = tessera_proto::cli_error::usage_message(&e.to_string(), "tessera");
        json_output::fail_kind(2, tessera_proto::cli_error::USAGE, &text)
    })
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    json_output::set(cli.json);
    tessera_bin_support::log_setup::init(cli.log_format, "info");
    // Nothing to ask the relay: no runtime.
    if let Command::BrokerConfig(b) = &cli.command {
        return broker_cmd::broker_config(b);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, &e.to_string()),
    };
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Completions { shell } => {
            tessera_bin_support::cli_docs::completions(Cli::command(), shell)
        }
        Command::Man { out_dir } => {
            tessera_bin_support::cli_docs::man(Cli::command(), out_dir.as_deref())
        }
        Command::Ca(CaCmd::Revoke {
            dir,
            certs,
            push,
            conn,
        }) => ca_revoke(&dir, &certs, push, &conn, cli.json).await,
        Command::Ca(CaCmd::IssueAgent {
            dir,
            request,
            out,
            days,
            hours,
            replace,
            push,
            conn,
        }) => {
            let a = ca_cmds::IssueAgent {
                dir: &dir,
                request: &request,
                out: &out,
                lifetime_secs: tessera_operator::ca::lifetime_secs(days, hours),
                replace,
                push,
            };
            ca_cmds::issue_agent(&a, &conn, cli.json).await
        }
        Command::Ca(CaCmd::Renew {
            dir,
            agents,
            due,
            days,
            hours,
            grace_secs,
            conn,
        }) => {
            let r = rotation_cmds::Renew {
                dir: &dir,
                agents: &agents,
                due,
                lifetime_secs: tessera_operator::ca::lifetime_secs(days, hours),
                grace_secs,
            };
            rotation_cmds::ca_renew(&r, &conn, cli.json).await
        }
        Command::Ca(c) => ca_cmd(c, cli.json),
        Command::Agents(AgentsCmd::Rotate { agent, conn }) => {
            rotation_cmds::agents_rotate(&agent, &conn, cli.json).await
        }
        Command::Grant { name, agents, conn } => {
            rescope(&conn, &name, &agents, cred::Rescope::Grant, cli.json).await
        }
        Command::Revoke { name, agents, conn } => {
            rescope(&conn, &name, &agents, cred::Rescope::Revoke, cli.json).await
        }
        Command::Cred(c) => cred_cmd(c, cli.json).await,
        Command::Dashboard {
            listen,
            allow_non_loopback,
            conn,
        } => dashboard_cmd::dashboard(&conn, listen, allow_non_loopback).await,
        Command::Agents(AgentsCmd::Ls { conn }) => ls_cmds::agents_ls(&conn, cli.json).await,
        Command::Alerts(ListCmd::Ls { conn }) => ls_cmds::alerts_ls(&conn, cli.json).await,
        Command::Audit(AuditCmd::Verify { expect_head, conn }) => {
            audit_verify(&conn, expect_head.as_deref(), cli.json).await
        }
        Command::Audit(AuditCmd::Ls { kind, conn }) => {
            ls_cmds::audit_ls(&conn, kind.as_deref(), cli.json).await
        }
        Command::Job(j) => job_cmd(j, cli.json).await,
        Command::BrokerConfig(b) => broker_cmd::broker_config(&b),
    }
}

#[cfg(test)]
mod tests;
