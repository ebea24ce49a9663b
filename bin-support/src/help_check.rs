//! The check each binary's unit tests run over its clap command tree: clap's own consistency assertions, and a
//! help text on every argument and subcommand (the `--help` output and the man pages are the reference).

/// Builds `cmd`, runs clap's debug assertions on it and panics with the list of arguments and subcommands that have
/// no help text, each as `path: name` below `cmd`'s name. For unit tests.
///
/// # Panics
///
/// When the command tree is inconsistent or something in it has no help text.
pub fn assert_documented(mut cmd: clap::Command) {
    cmd.build();
    cmd.clone().debug_assert();
    let mut missing = Vec::new();
    let name = cmd.get_name().to_owned();
    missing_help(&cmd, &name, &mut missing);
    assert!(
        missing.is_empty(),
        "without help text:\n{}",
        missing.join("\n")
    );
}

/// Every argument and subcommand below `cmd` that has no help text, as `path: name`.
fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            out.push(format!("{path}: argument {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            out.push(format!("{sub_path}: subcommand"));
        }
        missing_help(sub, &sub_path, out);
    }
}

#[cfg(test)]
mod tests;
