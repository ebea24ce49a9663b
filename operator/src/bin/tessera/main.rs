//! `tessera`: the operator's commands, on the operator's workstation (CA, sealing, statements, the admin client).
//!
//! Exit codes: 0 success; 1 failure; 2 usage or input error, or the relay's answers contradict what was signed
//! (nothing was signed or sealed); 3 the relay refused (invalid, unauthorized, busy); 4 `audit verify` found the
//! chain broken or a recorded delivery, purge or rotation without a valid receipt (`cred show`: a state without one).
#![forbid(unsafe_code)]

mod broker_cmd;
mod ca_cmds;
mod cli;
mod cred_cmds;
mod dashboard_cmd;
mod fleet_cmds;
mod rotation_cmds;
mod session;
mod show_cmd;

use std::process::ExitCode;

use clap::Parser;

use ca_cmds::{ca_cmd, ca_revoke};
use cli::{AgentsCmd, AuditCmd, CaCmd, Cli, Command, ListCmd};
use cred_cmds::{cred_cmd, rescope};
use fleet_cmds::{audit_verify, job_cmd};
use tessera_operator::cred;

pub(crate) fn fail(code: u8, msg: &str) -> ExitCode {
    eprintln!("tessera: {msg}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tessera_proto::logging::init(cli.log_format, "info");
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
            ca_cmds::issue_agent(&a, &conn).await
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
        Command::Ca(c) => ca_cmd(c),
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
        Command::Agents(AgentsCmd::Ls { conn }) => fleet_cmds::agents_ls(&conn, cli.json).await,
        Command::Alerts(ListCmd::Ls { conn }) => fleet_cmds::alerts_ls(&conn, cli.json).await,
        Command::Audit(AuditCmd::Verify { expect_head, conn }) => {
            audit_verify(&conn, expect_head.as_deref(), cli.json).await
        }
        Command::Audit(AuditCmd::Ls { kind, conn }) => {
            fleet_cmds::audit_ls(&conn, kind.as_deref(), cli.json).await
        }
        Command::Job(j) => job_cmd(j, cli.json).await,
        Command::BrokerConfig(b) => broker_cmd::broker_config(&b),
    }
}
