//! The agent configuration from TOML text: `AgentConfig::from_toml`, then `validate`, then what the agent derives
//! from a valid configuration (policy lookup, job template rendering) (`tessera_agent::config`).
//!
//! Checked beyond "no panic": every template of a valid configuration refuses an undeclared parameter, and when its
//! parameters' types accept the values given, its argv keeps the template's length and absolute program path.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tessera_agent::config::{AgentConfig, Caller};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = AgentConfig::from_toml(text, Path::new("fuzz.toml")) else {
        return;
    };
    if cfg.validate().is_err() {
        return;
    }
    let caller = Caller {
        uid: 1000,
        gid: 1000,
        pid: None,
    };
    for name in cfg.policy.keys() {
        if let Some(policy) = cfg.policy_for(name) {
            let _ = policy.allows(&caller);
        }
    }
    let _ = cfg.key_file();
    for (name, job) in &cfg.jobs {
        // Values a parameter's type may refuse (typed parameters, docs/operations.md); one it accepts never
        // changes the program or the number of arguments, and a placeholder in a value is never expanded again.
        let params: BTreeMap<String, String> = job
            .params
            .iter()
            .map(|(p, _)| (p.clone(), format!("{{{p}}}x")))
            .collect();
        if let Ok(argv) = job.render(&params) {
            assert_eq!(argv.len(), job.command.len(), "jobs.{name}");
            assert_eq!(
                argv.first(),
                job.command.first(),
                "jobs.{name}: program is never substituted"
            );
        }
        let mut extra = params.clone();
        extra.insert(
            "not-declared-by-any-template-\u{1}".to_owned(),
            String::new(),
        );
        assert!(
            job.render(&extra).is_err(),
            "jobs.{name}: an undeclared parameter is refused"
        );
    }
});
