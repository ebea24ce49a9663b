use super::*;

#[test]
fn a_documented_tree_passes() {
    let cmd = clap::Command::new("t")
        .about("top")
        .arg(clap::Arg::new("flag").long("flag").help("a flag"))
        .subcommand(clap::Command::new("sub").about("a subcommand"));
    assert_documented(cmd);
}

#[test]
fn an_argument_or_subcommand_without_help_is_named() {
    let cmd = clap::Command::new("t")
        .arg(clap::Arg::new("flag").long("flag"))
        .subcommand(clap::Command::new("sub"));
    let mut missing = Vec::new();
    missing_help(&cmd, "t", &mut missing);
    assert_eq!(missing, ["t: argument flag", "t sub: subcommand"]);
}
