//! `exec`'s program, found before any secret is fetched, the way a shell finds it: a name with a `/` is a path, any
//! other name is searched in `PATH`. Not found exits 127, found but not executable 126, as in a shell.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Why the program cannot run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LookupError {
    /// No such file (exit 127).
    #[error("{0}: command not found (give a path, or check PATH)")]
    NotFound(String),
    /// A file that cannot be executed: a directory, no execute permission (exit 126).
    #[error("{0}: cannot execute: {1}")]
    NotExecutable(String, String),
    /// Another failure to start it.
    #[error("{0}: {1}")]
    Other(String, String),
}

impl LookupError {
    /// The shell's exit code for it.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::NotFound(_) => 127,
            Self::NotExecutable(..) => 126,
            Self::Other(..) => 1,
        }
    }

    /// The error of a spawn that failed anyway (the file changed after the lookup).
    pub(crate) fn from_spawn(program: &str, e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => Self::NotFound(program.to_owned()),
            std::io::ErrorKind::PermissionDenied => {
                Self::NotExecutable(program.to_owned(), e.to_string())
            }
            _ => Self::Other(program.to_owned(), e.to_string()),
        }
    }
}

/// The file `program` names, ready to execute.
pub(crate) fn find(program: &str) -> Result<PathBuf, LookupError> {
    if program.is_empty() {
        return Err(LookupError::NotFound(program.to_owned()));
    }
    if program.contains('/') {
        return check(Path::new(program), program).map(|()| PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut refused = None;
    for dir in std::env::split_paths(&path) {
        // An empty entry is the current directory, as in a shell.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(program);
        match check(&candidate, program) {
            Ok(()) => return Ok(candidate),
            Err(LookupError::NotFound(_)) => {}
            Err(e) => {
                refused.get_or_insert(e);
            }
        }
    }
    Err(refused.unwrap_or_else(|| LookupError::NotFound(program.to_owned())))
}

fn check(path: &Path, program: &str) -> Result<(), LookupError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LookupError::NotFound(program.to_owned()))
        }
        Err(e) => {
            return Err(LookupError::NotExecutable(
                program.to_owned(),
                e.to_string(),
            ))
        }
    };
    if meta.is_dir() {
        return Err(LookupError::NotExecutable(
            program.to_owned(),
            "is a directory".into(),
        ));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(LookupError::NotExecutable(
            program.to_owned(),
            format!("{} has no execute permission", path.display()),
        ));
    }
    Ok(())
}
