// The one build script of the three binaries (agent/, relay/, operator/ each `include!` it from their build.rs):
// the git commit the binary is built from, for `--version` (`TESSERA_GIT_COMMIT`): the short hash of
// `git rev-parse --short HEAD`, or `unknown` outside a git checkout or without git; a build from a source tarball
// can set `TESSERA_GIT_COMMIT` itself. It never fails the build. Plain `//` comments: an included file cannot
// carry inner doc comments.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[allow(clippy::print_stdout)] // cargo reads a build script's instructions from its standard output
fn main() {
    let commit = std::env::var("TESSERA_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=TESSERA_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
    // This file, from the including package's directory (agent/, relay/ and operator/ are its siblings).
    println!("cargo:rerun-if-changed=../bin-support/build/git_commit.rs");
    println!("cargo:rerun-if-env-changed=TESSERA_GIT_COMMIT");
    // A new commit or checkout moves HEAD or the branch it names: rebuild then (paths work in worktrees too).
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
