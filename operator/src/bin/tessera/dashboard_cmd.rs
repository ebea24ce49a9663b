//! `tessera dashboard`: serves the operator's local web UI ([`tessera_operator::dashboard`]) with this
//! workstation's identity, printing the address to open (it carries the run's token).

use std::net::SocketAddr;
use std::process::ExitCode;

use tessera_operator::dashboard::{self, Identity};

use crate::cli::Conn;
use crate::fail;
use crate::session::load_operator;

#[allow(clippy::print_stdout)]
pub(crate) async fn dashboard(
    conn: &Conn,
    listen: SocketAddr,
    allow_non_loopback: bool,
) -> ExitCode {
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    let bound = match dashboard::bind(listen, allow_non_loopback).await {
        Ok(b) => b,
        Err(e @ dashboard::DashboardError::NotLoopback(_)) => return fail(2, &e.to_string()),
        Err(e) => return fail(1, &e.to_string()),
    };
    // Standard output, for the operator's eyes (and a wrapper that opens a browser): the token is this run's only.
    println!("dashboard: {}", bound.login_url());
    let id = Identity {
        ca: op.ca,
        key: op.key,
        cert: op.cert,
        id: op.id,
        dir: op.dir,
        client: op.client,
    };
    match bound.serve(id).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e.to_string()),
    }
}
