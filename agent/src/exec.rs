//! Running a child process with credentials injected as environment variables.
//!
//! The secret text is held in zeroizing buffers and given only to the child's environment. Limit (documented in
//! docs/threat-model.md): `std::process::Command` copies environment values into its own buffers, which are freed
//! without zeroizing when the command is dropped right after spawning; and the child's environment is readable
//! by processes of the same uid through `/proc/<pid>/environ`, as for any environment variable.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use zeroize::Zeroizing;

/// One injected variable.
#[derive(Debug)]
pub struct Injected {
    /// The variable name.
    pub var: String,
    /// The value (secret text).
    pub value: Zeroizing<String>,
}

/// What a captured run produced.
#[derive(Debug, Default)]
pub struct Captured {
    /// Exit code, if the process exited normally.
    pub exit_code: Option<i32>,
    /// Standard output, at most the limit, lossy UTF-8.
    pub stdout: String,
    /// Standard error, likewise.
    pub stderr: String,
    /// Whether output was cut at the limit.
    pub truncated: bool,
    /// Whether the timeout killed it.
    pub timed_out: bool,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Runs `argv` with a cleared environment (plus `inherit` from ours and `injected`), capturing bounded output and
/// killing it after `timeout`.
pub async fn run_captured(
    argv: &[String],
    inherit: &[String],
    injected: Vec<Injected>,
    timeout: Duration,
    max_output: usize,
) -> std::io::Result<Captured> {
    let (program, program_args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(program_args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let passthrough: BTreeMap<&String, String> = inherit
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k, v)))
        .collect();
    cmd.envs(passthrough);
    for i in &injected {
        cmd.env(&i.var, i.value.as_str());
    }
    let started = std::time::Instant::now();
    let mut child = cmd.spawn()?;
    drop(cmd);
    drop(injected);
    let out = child.stdout.take();
    let err = child.stderr.take();
    let work = async {
        let ((o, oc), (e, ec), status) = tokio::join!(
            read_bounded(out, max_output),
            read_bounded(err, max_output),
            child.wait()
        );
        (o, oc, e, ec, status)
    };
    let mut captured = Captured::default();
    if let Ok((o, oc, e, ec, status)) = tokio::time::timeout(timeout, work).await {
        captured.exit_code = status?.code();
        captured.stdout = lossy_bounded(&o, max_output);
        captured.stderr = lossy_bounded(&e, max_output);
        captured.truncated = oc || ec;
    } else {
        captured.timed_out = true;
        let _ = child.kill().await;
    }
    captured.elapsed = started.elapsed();
    Ok(captured)
}

/// Reads a pipe to its end, keeping at most `max` bytes; says whether anything was cut.
async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
    max: usize,
) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let mut cut = false;
    if let Some(mut p) = pipe {
        let mut chunk = [0u8; 4096];
        loop {
            match p.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = max.saturating_sub(buf.len());
                    cut |= n > room;
                    buf.extend_from_slice(chunk.get(..n.min(room)).unwrap_or_default());
                }
            }
        }
    }
    (buf, cut)
}

/// Lossy UTF-8 of `bytes`, cut on a character boundary so it stays within `max` bytes.
fn lossy_bounded(bytes: &[u8], max: usize) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests;
