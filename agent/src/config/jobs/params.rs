//! Typed job parameters: what each value the relay supplies may be. A value is substituted into one argv element,
//! but the program parses its own argv, so a value such as `-oProxyCommand=...` would still be an option to it;
//! every value is therefore checked against its parameter's declared type before anything runs.
//!
//! A parameter declares at most one of `kind` (`word`, the default; `hostname`; `integer` with `min`/`max`; `path`
//! with `under`), `pattern` (a regex the whole value must match) or `enum` (the allowed values). Every type refuses
//! an empty value, a value longer than `max_len` (default [`DEFAULT_MAX_LEN`]), control and line-breaking characters,
//! and a leading `-` unless `allow_leading_dash = true` (which the template may only set with a `--` element before
//! the placeholder; checked in [`super::JobTemplate`]).

mod kinds;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use regex::Regex;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use tessera_proto::wire::MAX_PARAM_VALUE;

/// Longest value accepted when a parameter does not set `max_len`.
pub const DEFAULT_MAX_LEN: usize = 256;

/// Longest `pattern` accepted in the configuration.
const MAX_PATTERN_LEN: usize = 1024;

/// Compiled size budget of a `pattern` (the regex crate's limits; a pathological pattern fails at load).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One parameter's declaration, as written in `[jobs.NAME.params.P]`. The list form `params = ["p"]` declares
/// each name with every field at its default (a `word`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// `word` (default), `hostname`, `integer` or `path`.
    #[serde(default)]
    pub kind: Option<String>,
    /// A regex the whole value must match (anchored at both ends).
    #[serde(default)]
    pub pattern: Option<String>,
    /// The allowed values, exactly.
    #[serde(default, rename = "enum")]
    pub one_of: Option<Vec<String>>,
    /// Smallest value of an `integer`.
    #[serde(default)]
    pub min: Option<i64>,
    /// Largest value of an `integer`.
    #[serde(default)]
    pub max: Option<i64>,
    /// The directory a `path` must be below (absolute, without `.` or `..`).
    #[serde(default)]
    pub under: Option<PathBuf>,
    /// Longest value in bytes (1..=4096).
    #[serde(default)]
    pub max_len: Option<usize>,
    /// Accept a value starting with `-`. Only valid when the command has a `--` element before every element
    /// using this parameter.
    #[serde(default)]
    pub allow_leading_dash: bool,
}

/// A template's parameters by name, from either form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, ParamSpec>);

impl Params {
    /// Parameters from `(name, declaration)` pairs.
    pub fn new(specs: impl IntoIterator<Item = (String, ParamSpec)>) -> Self {
        Self(specs.into_iter().collect())
    }

    /// Untyped (`word`) parameters, as the list form declares them.
    pub fn words<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self::new(names.into_iter().map(|n| (n.into(), ParamSpec::default())))
    }

    /// Whether `name` is declared.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Each declared name and its declaration, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &ParamSpec)> {
        self.0.iter()
    }

    /// Whether none is declared.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Params;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of parameter names or a table of parameter declarations")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Params, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(name) = seq.next_element::<String>()? {
                    if out.insert(name.clone(), ParamSpec::default()).is_some() {
                        return Err(de::Error::custom(format!(
                            "parameter {name:?} is listed twice"
                        )));
                    }
                }
                Ok(Params(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((name, spec)) = map.next_entry::<String, ParamSpec>()? {
                    out.insert(name, spec);
                }
                Ok(Params(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Why a value was refused. The text names the rule, never quotes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// An empty value.
    #[error("empty")]
    Empty,
    /// Longer than the parameter's `max_len`.
    #[error("longer than {0} bytes")]
    TooLong(usize),
    /// A control character, a line break or a bidirectional override.
    #[error("a control or line-breaking character")]
    Control,
    /// Starts with `-` and the parameter does not allow it.
    #[error("leading '-'")]
    LeadingDash,
    /// A `word` with a character outside its set.
    #[error("a character outside [A-Za-z0-9._:@/+=,-]")]
    Charset,
    /// Does not match the parameter's `pattern`.
    #[error("does not match the declared pattern")]
    Pattern,
    /// Not one of the parameter's `enum` values.
    #[error("not one of the declared values")]
    NotListed,
    /// Not an RFC 1123 host name or an IP address literal.
    #[error("not a hostname or IP address: {0}")]
    Hostname(&'static str),
    /// Not a decimal integer in range.
    #[error("not an integer in {0}")]
    Integer(String),
    /// Not a path below the declared directory.
    #[error("not a path under {under}: {why}")]
    Path {
        /// The declared directory.
        under: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// A parameter problem in a dispatch: the parameter's name and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// The dispatch supplies a parameter the template does not declare.
    #[error("{0}: not declared by the template")]
    Undeclared(String),
    /// The dispatch lacks a declared parameter.
    #[error("{0}: missing")]
    Missing(String),
    /// The value failed its declared type.
    #[error("{param}: {reason}")]
    Refused {
        /// The parameter.
        param: String,
        /// Why.
        reason: Refusal,
    },
    /// The declaration does not compile (config validation should have caught it).
    #[error("{param}: invalid declaration: {message}")]
    Declaration {
        /// The parameter.
        param: String,
        /// Why.
        message: String,
    },
}

impl ParamError {
    /// The parameter concerned.
    pub fn param(&self) -> &str {
        match self {
            Self::Undeclared(p) | Self::Missing(p) => p,
            Self::Refused { param, .. } | Self::Declaration { param, .. } => param,
        }
    }
}

/// What a declared type checks beyond the common rules.
#[derive(Debug)]
enum Check {
    Word,
    Pattern(Box<Regex>),
    OneOf(Vec<String>),
    Hostname,
    Integer { min: i64, max: i64 },
    Path { under: PathBuf },
}

/// A compiled declaration.
#[derive(Debug)]
pub(crate) struct Checker {
    check: Check,
    max_len: usize,
    allow_leading_dash: bool,
}

impl ParamSpec {
    /// Compiles the declaration; the error says which key is wrong.
    pub(crate) fn compile(&self) -> Result<Checker, String> {
        let chosen = usize::from(self.kind.is_some())
            + usize::from(self.pattern.is_some())
            + usize::from(self.one_of.is_some());
        if chosen > 1 {
            return Err("set at most one of kind, pattern and enum".into());
        }
        let max_len = self.max_len.unwrap_or(DEFAULT_MAX_LEN);
        if !(1..=MAX_PARAM_VALUE).contains(&max_len) {
            return Err(format!("max_len must be 1..={MAX_PARAM_VALUE}"));
        }
        let kind = self.kind.as_deref().unwrap_or("word");
        if (self.min.is_some() || self.max.is_some()) && kind != "integer" {
            return Err("min and max apply only to kind = \"integer\"".into());
        }
        if self.under.is_some() && kind != "path" {
            return Err("under applies only to kind = \"path\"".into());
        }
        let check = if let Some(p) = &self.pattern {
            Check::Pattern(Box::new(compile_pattern(p)?))
        } else if let Some(values) = &self.one_of {
            if values.is_empty() {
                return Err("enum is empty".into());
            }
            Check::OneOf(values.clone())
        } else {
            match kind {
                "word" => Check::Word,
                "hostname" => Check::Hostname,
                "integer" => {
                    let (min, max) = (self.min.unwrap_or(i64::MIN), self.max.unwrap_or(i64::MAX));
                    if min > max {
                        return Err("min is greater than max".into());
                    }
                    Check::Integer { min, max }
                }
                "path" => Check::Path {
                    under: kinds::declared_dir(self.under.as_deref())?,
                },
                other => {
                    return Err(format!(
                        "unknown kind {other:?} (expected word, hostname, integer or path)"
                    ))
                }
            }
        };
        let checker = Checker {
            check,
            max_len,
            allow_leading_dash: self.allow_leading_dash,
        };
        if let Check::OneOf(values) = &checker.check {
            for v in values {
                checker
                    .common(v)
                    .map_err(|r| format!("enum value {v:?} would be refused: {r}"))?;
            }
        }
        Ok(checker)
    }
}

fn compile_pattern(p: &str) -> Result<Regex, String> {
    if p.len() > MAX_PATTERN_LEN {
        return Err(format!("pattern is longer than {MAX_PATTERN_LEN} bytes"));
    }
    regex::RegexBuilder::new(&format!(r"\A(?:{p})\z"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("pattern does not compile: {e}"))
}

/// Control characters (C0, DEL, C1), the Unicode line and paragraph separators, and bidirectional overrides.
fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl Checker {
    /// The rules every type shares.
    fn common(&self, value: &str) -> Result<(), Refusal> {
        if value.is_empty() {
            return Err(Refusal::Empty);
        }
        if value.len() > self.max_len {
            return Err(Refusal::TooLong(self.max_len));
        }
        if value.chars().any(is_forbidden_char) {
            return Err(Refusal::Control);
        }
        if value.starts_with('-') && !self.allow_leading_dash {
            return Err(Refusal::LeadingDash);
        }
        Ok(())
    }

    /// Whether the declaration allows a leading `-`.
    pub(crate) fn allows_leading_dash(&self) -> bool {
        self.allow_leading_dash
    }

    /// Checks `value`; returns what to substitute (integers and paths in their normal form, else the value).
    pub(crate) fn admit(&self, value: &str) -> Result<String, Refusal> {
        self.common(value)?;
        match &self.check {
            Check::Word => kinds::word(value).map(|()| value.to_owned()),
            Check::Pattern(re) => {
                if re.is_match(value) {
                    Ok(value.to_owned())
                } else {
                    Err(Refusal::Pattern)
                }
            }
            Check::OneOf(values) => values
                .iter()
                .find(|v| *v == value)
                .cloned()
                .ok_or(Refusal::NotListed),
            Check::Hostname => kinds::hostname(value).map(|()| value.to_owned()),
            Check::Integer { min, max } => kinds::integer(value, *min, *max),
            Check::Path { under } => kinds::path_under(value, under),
        }
    }
}

#[cfg(test)]
mod tests;
