//! The log setup the three binaries share (`tessera`, `tessera-agent`, `tessera-relay`): it installs a `tracing`
//! subscriber writing to stderr.
//!
//! - The filter: `TESSERA_LOG` when set, else `RUST_LOG`, else the binary's default (`info`). A filter that does not
//!   parse falls back to the default, with a warning. A bare `debug` or `trace` level is for the binaries' own
//!   code: the libraries' internals ([`QUIET`]: HTTP, TLS, MQTT, the runtime, sled) stay at `info` unless the filter names
//!   them (`trace,rumqttc=trace`). docs/operations.md "Logs".
//! - `--log-format text|json` ([`LogFormat`]): text for people, one JSON object a line for collectors.
//! - No ANSI colour codes unless stderr is a terminal (a pipe, a file or the journal gets plain text).
//!
//! Nothing secret is logged by the binaries: secrets are in types whose `Debug` is redacted
//! (`tessera_proto::secret`); `tests/tests/agent_ops.rs`
//! (`trace_logs_of_a_delivery_hold_no_secret_and_json_lines_are_json`) checks a delivery's logs at trace level, the libraries' included, for the secret, its base64 and its hex.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// The filter variable read first; `RUST_LOG` is read when it is unset.
pub const FILTER_VAR: &str = "TESSERA_LOG";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line (`timestamp`, `level`, `target`, `fields`, `span`s).
    Json,
}

/// A `--log-format` value that is neither `text` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log format must be `text` or `json`")]
pub struct UnknownLogFormat;

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(UnknownLogFormat),
        }
    }
}

/// The libraries kept at `info` under a bare `debug` or `trace` level unless the filter names them (a target
/// matches its prefix: `hyper` covers `hyper_util`, `tokio` covers `tokio_rustls` and `tokio_util`).
pub const QUIET: [&str; 8] = [
    "hyper", "h2", "rustls", "rumqttc", "tokio", "mio", "tower", "sled",
];

/// `directives` with `CRATE=info` appended for each [`QUIET`] crate it does not name, when it sets a bare level
/// below `info` (`debug`, `trace`); otherwise unchanged (a stricter level already covers the libraries).
pub fn quiet_internals(directives: &str) -> String {
    let parts: Vec<&str> = directives.split(',').map(str::trim).collect();
    let verbose = parts.iter().any(|d| {
        ["debug", "trace", "4", "5"]
            .iter()
            .any(|l| d.eq_ignore_ascii_case(l))
    });
    if !verbose {
        return directives.to_owned();
    }
    let named = |krate: &str| {
        parts.iter().any(|d| {
            let target = d.split(['=', '[']).next().unwrap_or_default();
            target == krate
        })
    };
    let mut out = directives.to_owned();
    out.extend(
        QUIET
            .iter()
            .filter(|k| !named(k))
            .map(|krate| format!(",{krate}=info")),
    );
    out
}

/// The filter directives from `TESSERA_LOG`, else `RUST_LOG` (from `env`), else `default`, with
/// [`quiet_internals`]; and whether the chosen variable did not parse (the default is used then).
pub fn filter_from(
    env: impl Fn(&str) -> Option<String>,
    default: &str,
) -> (EnvFilter, Option<String>) {
    let chosen = [FILTER_VAR, "RUST_LOG"]
        .into_iter()
        .find_map(|var| env(var).filter(|v| !v.trim().is_empty()).map(|v| (var, v)));
    match chosen {
        None => (EnvFilter::new(default), None),
        Some((var, directives)) => match EnvFilter::try_new(quiet_internals(&directives)) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(default),
                Some(format!("{var} does not parse ({e}); logging at {default}")),
            ),
        },
    }
}

/// Installs the subscriber: stderr, the filter of [`filter_from`] over the process environment, `format`, colours
/// only on a terminal. Call once, first thing in `main`; a second call does nothing.
pub fn init(format: LogFormat, default: &str) {
    let (filter, warning) = filter_from(|v| std::env::var(v).ok(), default);
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // The appliance agent is built without the JSON formatter (its logs go to the journal): text, and a warning.
    #[cfg(not(feature = "log-json"))]
    let warning = match format {
        LogFormat::Json => {
            Some("this build has no JSON log format (feature log-json): logging as text".to_owned())
        }
        LogFormat::Text => warning,
    };
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        #[cfg(feature = "log-json")]
        LogFormat::Json => builder.json().try_init(),
        #[cfg(not(feature = "log-json"))]
        LogFormat::Json => builder.try_init(),
    };
    if let (Ok(()), Some(w)) = (installed, warning) {
        tracing::warn!("{w}");
    }
}

#[cfg(test)]
mod tests;
