//! The relay's binary carries no CA or sealing code: those live in the operator's `tessera` binary. Checked on the
//! symbols of the binaries this test run built (a release build is stripped: then there is nothing to read and the
//! test says so).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use tessera_system_tests::bins::bin;

const CA_AND_SEALING: [&str; 4] = [
    "tessera_proto::cert::ca::OrgCa::issue_agent",
    "tessera_proto::cert::ca::OrgCa::issue_operator",
    "tessera_proto::envelope::seal",
    "tessera_proto::commitment::compute",
];

fn symbols(name: &str) -> Option<String> {
    let out = Command::new("nm").arg("-C").arg(bin(name)).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_relay_binary_holds_no_ca_or_sealing_code() {
    let (Some(operator), Some(relay)) = (symbols("tessera"), symbols("tessera-relay")) else {
        eprintln!("nm is not available or the binaries are stripped: nothing to check");
        return;
    };
    for sym in CA_AND_SEALING {
        assert!(
            operator.contains(sym),
            "{sym} is not in tessera: the check reads the wrong symbols"
        );
        assert!(!relay.contains(sym), "{sym} is linked into tessera-relay");
    }
}
