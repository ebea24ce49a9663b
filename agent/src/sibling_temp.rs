//! A fresh temporary file beside a path, for writing a file whole and renaming it over the old one (the metrics
//! textfile, `config set`). The name is random (`.NAME.tmp.<uuid>`) and the file is opened with `O_CREAT|O_EXCL`
//! and `O_NOFOLLOW`: in a directory others can write to, nobody can make the agent open their symlink, or a file
//! they made, under a name they guessed, and truncate what it points at. The file gets exactly `mode` (`fchmod`,
//! the umask does not apply).

use std::fs::File;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Creates the temporary file beside `path` with `mode`: its path and the open file.
pub fn create(path: &Path, mode: u32) -> std::io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", uuid::Uuid::new_v4().simple()));
    let tmp = path.with_file_name(tmp_name);
    let nofollow = i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits())
        .map_err(|_| std::io::Error::other("O_NOFOLLOW does not fit"))?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nofollow)
        .mode(mode)
        .open(&tmp)?;
    if let Err(e) = f.set_permissions(std::fs::Permissions::from_mode(mode)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok((tmp, f))
}

#[cfg(test)]
mod tests;
