//! Job templates: the only commands the agent will run for the relay. The relay names a template and supplies
//! parameter values; it can never supply a command line, and each value must pass its parameter's declared type
//! ([`params`]) before it is substituted.

pub mod params;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tessera_proto::ids::is_valid_name;

use params::{ParamError, Params};

/// A job template.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobTemplate {
    /// argv; the first element is an absolute path. `{param}` in an element is replaced by that parameter's value
    /// (no shell is involved, so a value can never become another argument or command; its type keeps it from
    /// being an option to the program).
    pub command: Vec<String>,
    /// Parameters the relay may (and must) supply: a list of names (each a `word`) or a table of typed
    /// declarations.
    #[serde(default)]
    pub params: Params,
    /// Environment variable to credential name: what the job gets injected.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// Environment variables passed through from the agent (everything else is cleared).
    #[serde(default = "default_inherit")]
    pub inherit_env: Vec<String>,
    /// Kill the job after this many seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_inherit() -> Vec<String> {
    vec!["PATH".to_owned()]
}

fn default_timeout() -> u64 {
    60
}

/// Whether `s` is a conventional environment variable name.
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 128
}

impl JobTemplate {
    pub(crate) fn validate(&self, name: &str) -> Result<(), String> {
        let here = |m: String| format!("jobs.{name}: {m}");
        if !is_valid_name(name) {
            return Err(here("template name must match [A-Za-z0-9_-]{1,128}".into()));
        }
        let Some(program) = self.command.first() else {
            return Err(here("command is empty".into()));
        };
        if !Path::new(program).is_absolute() || program.contains('{') {
            return Err(here(
                "command[0] must be an absolute path without parameters".into(),
            ));
        }
        for (p, spec) in self.params.iter() {
            if !is_valid_name(p) {
                return Err(here(format!(
                    "parameter name {p:?} must match [A-Za-z0-9_-]{{1,128}}"
                )));
            }
            let checker = spec
                .compile()
                .map_err(|m| format!("jobs.{name}.params.{p}: {m}"))?;
            if checker.allows_leading_dash() && !self.dash_dash_before(p) {
                return Err(format!(
                    "jobs.{name}.params.{p}: allow_leading_dash needs a \"--\" element in command before every \
                     element using {{{p}}}"
                ));
            }
        }
        for arg in &self.command {
            for placeholder in placeholders(arg) {
                if !self.params.contains(placeholder) {
                    return Err(here(format!(
                        "command uses {{{placeholder}}} which is not in params"
                    )));
                }
            }
        }
        for (env, cred) in &self.credentials {
            if !is_env_name(env) {
                return Err(here(format!("{env:?} is not an environment variable name")));
            }
            if !is_valid_name(cred) {
                return Err(here(format!("{cred:?} is not a credential name")));
            }
        }
        if !(1..=86_400).contains(&self.timeout_secs) {
            return Err(here("timeout_secs must be 1..=86400".into()));
        }
        Ok(())
    }

    /// Whether every element using `{param}` comes after a `--` element (the end of the program's options).
    fn dash_dash_before(&self, param: &str) -> bool {
        let first_dd = self.command.iter().skip(1).position(|a| a == "--");
        let first_use = self
            .command
            .iter()
            .position(|a| placeholders(a).contains(&param));
        match (first_dd, first_use) {
            (Some(dd), Some(used)) => dd + 1 < used,
            (None, Some(_)) => false,
            (_, None) => true,
        }
    }

    /// The argv with parameters substituted, each value checked against its declared type first; an error naming
    /// the parameter if one is missing, undeclared or refused.
    pub fn render(&self, params: &BTreeMap<String, String>) -> Result<Vec<String>, ParamError> {
        if let Some(extra) = params.keys().find(|k| !self.params.contains(k)) {
            return Err(ParamError::Undeclared(extra.clone()));
        }
        let mut admitted = BTreeMap::new();
        for (p, spec) in self.params.iter() {
            let value = params
                .get(p)
                .ok_or_else(|| ParamError::Missing(p.clone()))?;
            let checker = spec.compile().map_err(|message| ParamError::Declaration {
                param: p.clone(),
                message,
            })?;
            let value = checker.admit(value).map_err(|reason| ParamError::Refused {
                param: p.clone(),
                reason,
            })?;
            admitted.insert(p.clone(), value);
        }
        Ok(self
            .command
            .iter()
            .map(|arg| substitute(arg, &admitted))
            .collect())
    }
}

/// Replaces each `{name}` in one pass, so a value that itself contains `{other}` is never expanded again.
fn substitute(arg: &str, params: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(start) = rest.find('{') {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 1..).unwrap_or_default();
        if let Some((value, end)) = after
            .find('}')
            .and_then(|end| Some((params.get(after.get(..end)?)?, end)))
        {
            out.push_str(value);
            rest = after.get(end + 1..).unwrap_or_default();
        } else {
            out.push('{');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The `{name}` placeholders in `arg`.
fn placeholders(arg: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(start) = rest.find('{') {
        let after = rest.get(start + 1..).unwrap_or_default();
        match after.find('}') {
            Some(end) => {
                out.push(after.get(..end).unwrap_or_default());
                rest = after.get(end + 1..).unwrap_or_default();
            }
            None => break,
        }
    }
    out
}
