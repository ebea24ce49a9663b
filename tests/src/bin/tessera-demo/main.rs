//! `tessera-demo`: the whole system on one machine, paced for an operator to follow. An org CA, a Mosquitto the demo
//! starts with TLS and the pattern ACL, the relay and three agents as real processes in a temporary directory;
//! credentials sealed on the operator's side, backfill by peer rewrap, the 02:00 reboot repaired just in time, a
//! compromised relay's swap refused with its alert and audit row, a key rotation and a purge. Exits 0 and removes
//! everything it made.
//!
//! It finds `tessera-agent`, `tessera-relay` and `tessera` next to its own executable (`scripts/demo` builds them all).
//! `--pace MS` sets the pause between steps (default 700); `--keep` keeps the directory for inspection.

mod say;
mod story;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[allow(clippy::print_stderr, clippy::print_stdout)]
fn main() -> ExitCode {
    let mut pace = Duration::from_millis(700);
    let mut keep = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keep" => keep = true,
            "--pace" => match args.next().and_then(|v| v.parse().ok()) {
                Some(ms) => pace = Duration::from_millis(ms),
                None => return usage("--pace needs milliseconds"),
            },
            "-h" | "--help" => {
                println!("usage: tessera-demo [--pace MS] [--keep]");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let bins = match std::env::current_exe() {
        Ok(exe) => exe.parent().map(PathBuf::from).unwrap_or_default(),
        Err(e) => return fail(&format!("cannot locate this executable: {e}")),
    };
    for b in ["tessera-agent", "tessera-relay", "tessera"] {
        if !bins.join(b).is_file() {
            return fail(&format!(
                "{b} is not next to tessera-demo in {}; build them together: scripts/demo, or \
                 cargo build --release -p tessera-agent -p tessera-relay -p tessera-operator -p tessera-system-tests --bin tessera-demo",
                bins.display()
            ));
        }
    }
    let dir = match tempfile::Builder::new().prefix("tessera-demo-").tempdir() {
        Ok(d) => d,
        Err(e) => return fail(&format!("temporary directory: {e}")),
    };
    println!("Tessera demo: a relay that moves credentials it can never read, forge or swap.");
    let result = story::run(dir.path(), &bins, say::Say::new(pace));
    let path = dir.path().to_path_buf();
    if keep {
        let kept = dir.keep();
        println!("\nkept {} (logs, states, certificates)", kept.display());
    } else if let Err(e) = dir.close() {
        eprintln!("tessera-demo: could not remove {}: {e}", path.display());
    }
    match result {
        Ok(()) => {
            println!(
                "\nDemo complete: every process stopped, every file removed{}.",
                if keep {
                    " except the kept directory"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("{e} (rerun with --keep to inspect logs)")),
    }
}

#[allow(clippy::print_stderr)]
fn fail(msg: &str) -> ExitCode {
    eprintln!("tessera-demo: {msg}");
    ExitCode::FAILURE
}

#[allow(clippy::print_stderr)]
fn usage(msg: &str) -> ExitCode {
    eprintln!("tessera-demo: {msg}\nusage: tessera-demo [--pace MS] [--keep]");
    ExitCode::from(2)
}
