use clap::CommandFactory as _;

use super::Cli;

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

#[test]
fn the_relay_command_line_is_consistent_and_every_option_and_subcommand_has_help() {
    let mut cmd = Cli::command();
    cmd.build();
    cmd.clone().debug_assert();
    let mut missing = Vec::new();
    missing_help(&cmd, "tessera-relay", &mut missing);
    assert!(
        missing.is_empty(),
        "without help text:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_version_names_the_git_commit() {
    let v = Cli::command().render_version();
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
    assert!(v.contains("(commit "), "{v}");
}
