use clap::CommandFactory as _;

use super::Cli;

#[test]
fn the_relay_command_line_is_consistent_and_every_option_and_subcommand_has_help() {
    tessera_bin_support::help_check::assert_documented(Cli::command());
}

#[test]
fn the_version_names_the_git_commit() {
    let v = Cli::command().render_version();
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
    assert!(v.contains("(commit "), "{v}");
}
