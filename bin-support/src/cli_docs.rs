//! `completions SHELL` and `man` (feature `cli-docs`): a shell completion script and the man pages, generated from
//! a binary's clap command tree so they always match its commands and flags (install: docs/operations.md,
//! "Command-line conventions"). A failed write is reported on stderr under the command's name (exit 1); a reader
//! that stopped early is not an error.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// The shells `completions` writes a script for (a clap `ValueEnum`, for the binaries' `completions SHELL`).
pub use clap_complete::Shell;

/// Prints the completion script for `shell` to standard output.
pub fn completions(mut cmd: clap::Command, shell: Shell) -> ExitCode {
    let name = cmd.get_name().to_owned();
    let bin = name.clone();
    // Generated into memory first: the generator cannot report a failed write (a closed pipe), this can.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    let mut out = std::io::stdout().lock();
    finish(
        out.write_all(&script).and_then(|()| out.flush()),
        "standard output",
        &bin,
    )
}

/// Prints the top-level man page to standard output, or with `out_dir` writes a page per command there (creating
/// it).
pub fn man(cmd: clap::Command, out_dir: Option<&Path>) -> ExitCode {
    let bin = cmd.get_name().to_owned();
    if let Some(dir) = out_dir {
        return finish(
            std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(cmd, dir)),
            &dir.display().to_string(),
            &bin,
        );
    }
    let mut out = std::io::stdout().lock();
    let r = clap_mangen::Man::new(cmd)
        .render(&mut out)
        .and_then(|()| out.flush());
    finish(r, "standard output", &bin)
}

/// The exit status of a write to `target`; `bin` (the command's name, which is the binary's) prefixes the error.
fn finish(r: std::io::Result<()>, target: &str, bin: &str) -> ExitCode {
    match r {
        // A reader that stopped early (`| head`) is not an error.
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{bin}: writing to {target}: {e}");
            ExitCode::from(1)
        }
    }
}
