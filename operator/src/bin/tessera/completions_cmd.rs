//! `completions SHELL` and `man`: a shell completion script and the man pages, generated from this binary's clap
//! command tree so they always match its commands and flags (install: docs/operations.md, "Command-line
//! conventions").

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Prints the completion script for `shell` to standard output.
pub(crate) fn completions(mut cmd: clap::Command, shell: clap_complete::Shell) -> ExitCode {
    let name = cmd.get_name().to_owned();
    // Generated into memory first: the generator cannot report a failed write (a closed pipe), this can.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    let mut out = std::io::stdout().lock();
    finish(
        out.write_all(&script).and_then(|()| out.flush()),
        "standard output",
    )
}

/// Prints the top-level man page to standard output, or with `out_dir` writes a page per command there (creating
/// it).
pub(crate) fn man(cmd: clap::Command, out_dir: Option<&Path>) -> ExitCode {
    if let Some(dir) = out_dir {
        return finish(
            std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(cmd, dir)),
            &dir.display().to_string(),
        );
    }
    let mut out = std::io::stdout().lock();
    let r = clap_mangen::Man::new(cmd)
        .render(&mut out)
        .and_then(|()| out.flush());
    finish(r, "standard output")
}

fn finish(r: std::io::Result<()>, target: &str) -> ExitCode {
    match r {
        // A reader that stopped early (`| head`) is not an error.
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: writing to {target}: {e}", env!("CARGO_BIN_NAME"));
            ExitCode::from(1)
        }
    }
}
