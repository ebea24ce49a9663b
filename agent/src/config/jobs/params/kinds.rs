//! The checks of the built-in kinds: `word`, `hostname`, `integer`, `path`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};

use super::Refusal;

/// `word`: only `[A-Za-z0-9._:@/+=,-]` (no spaces, quotes, shell or glob characters).
pub(super) fn word(value: &str) -> Result<(), Refusal> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._:@/+=,-".contains(c);
    if value.chars().all(ok) {
        Ok(())
    } else {
        Err(Refusal::Charset)
    }
}

/// `hostname`: an IPv4 literal (dotted quad), an IPv6 literal (without brackets or zone), or an RFC 1123 name:
/// at most 253 bytes, dot-separated labels of 1 to 63 letters, digits and hyphens that neither start nor end with a
/// hyphen, the last one starting with a letter (so `127.1` or `0x7f.1`, which resolvers read as addresses, are not
/// names). No trailing dot.
pub(super) fn hostname(value: &str) -> Result<(), Refusal> {
    if value.parse::<Ipv4Addr>().is_ok() || value.parse::<Ipv6Addr>().is_ok() {
        return Ok(());
    }
    if value.len() > 253 {
        return Err(Refusal::Hostname("longer than 253 bytes"));
    }
    let mut last = "";
    for label in value.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(Refusal::Hostname(
                "a label is empty or longer than 63 bytes",
            ));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Refusal::Hostname("a character outside [A-Za-z0-9-]"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(Refusal::Hostname("a label starts or ends with '-'"));
        }
        last = label;
    }
    if !last.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(Refusal::Hostname(
            "the last label does not start with a letter",
        ));
    }
    Ok(())
}

/// `integer`: decimal digits with an optional leading `-` (which the common rules refuse unless allowed), no `+`,
/// within `min..=max`; substituted in its normal form (no leading zeros, which some programs read as octal).
pub(super) fn integer(value: &str, min: i64, max: i64) -> Result<String, Refusal> {
    let range = || match (min, max) {
        (i64::MIN, i64::MAX) => "i64".to_owned(),
        _ => format!("{min}..={max}"),
    };
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Integer(range()));
    }
    match value.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
        _ => Err(Refusal::Integer(range())),
    }
}

/// The declared directory of a `path` parameter: required, absolute, and already lexically normal.
pub(super) fn declared_dir(under: Option<&Path>) -> Result<PathBuf, String> {
    let under = under.ok_or("kind = \"path\" needs under = \"/some/dir\"")?;
    if !under.is_absolute() {
        return Err("under must be an absolute path".into());
    }
    if under
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        || under.to_str().is_none_or(|s| s.contains('\0'))
    {
        return Err("under must not contain . or .. components".into());
    }
    Ok(under.components().collect())
}

/// `path`: a path strictly below `under`, absolute or relative to it, normalised lexically (`.` dropped, `..`
/// resolved) and refused if it climbs out of `under`. Symbolic links are not resolved: a link below `under` that
/// points elsewhere is followed by the program (docs/operations.md).
pub(super) fn path_under(value: &str, under: &Path) -> Result<String, Refusal> {
    let refuse = |why| Refusal::Path {
        under: under.display().to_string(),
        why,
    };
    let joined = under.join(value);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() || !out.starts_with(under) {
                    return Err(refuse("'..' climbs out of it"));
                }
            }
            Component::Normal(part) => out.push(part),
        }
    }
    if !out.starts_with(under) {
        return Err(refuse("outside it"));
    }
    if out == under {
        return Err(refuse("the directory itself"));
    }
    out.to_str()
        .map(str::to_owned)
        .ok_or_else(|| refuse("not UTF-8"))
}
