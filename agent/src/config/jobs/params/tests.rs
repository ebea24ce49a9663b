use super::*;

fn spec(toml_text: &str) -> ParamSpec {
    toml::from_str(toml_text).unwrap()
}

fn checker(toml_text: &str) -> Checker {
    spec(toml_text).compile().unwrap()
}

fn refused(c: &Checker, value: &str) -> Refusal {
    c.admit(value).unwrap_err()
}

#[test]
fn the_default_is_a_conservative_word() {
    let c = checker("");
    for ok in [
        "10.0.0.1",
        "core-sw1.example.net",
        "user@host:/backups/a+b=c,d",
        "a-b_c",
    ] {
        assert_eq!(c.admit(ok).unwrap(), ok);
    }
    assert_eq!(
        refused(&c, "-oProxyCommand=touch /tmp/x"),
        Refusal::LeadingDash
    );
    assert_eq!(refused(&c, "--config"), Refusal::LeadingDash);
    for bad in [
        "a b", "x;id", "$(id)", "`id`", "a|b", "a'b", "a\"b", "*", "a?b", "~root", "a\\b", "é",
    ] {
        assert_eq!(refused(&c, bad), Refusal::Charset, "{bad:?}");
    }
    assert_eq!(refused(&c, ""), Refusal::Empty);
    assert_eq!(
        refused(&c, &"a".repeat(DEFAULT_MAX_LEN + 1)),
        Refusal::TooLong(DEFAULT_MAX_LEN)
    );
    assert!(c.admit(&"a".repeat(DEFAULT_MAX_LEN)).is_ok());
    let short = checker("max_len = 3");
    assert_eq!(refused(&short, "abcd"), Refusal::TooLong(3));
}

#[test]
fn every_kind_refuses_control_characters_and_line_breaks() {
    let all = [
        checker(""),
        checker("kind = \"word\""),
        checker("pattern = '(?s).*'"),
        checker("enum = [\"a\"]"),
        checker("kind = \"hostname\""),
        checker("kind = \"integer\""),
        checker("kind = \"path\"\nunder = \"/var/lib/x\""),
    ];
    for c in &all {
        for bad in [
            "a\nb",
            "a\rb",
            "a\0b",
            "a\tb",
            "a\u{7f}",
            "a\u{85}",
            "a\u{2028}b",
            "a\u{202e}b",
        ] {
            assert_eq!(refused(c, bad), Refusal::Control, "{c:?} {bad:?}");
        }
        assert_eq!(refused(c, ""), Refusal::Empty, "{c:?}");
    }
}

#[test]
fn every_kind_refuses_a_leading_dash_unless_allowed() {
    for decl in [
        "",
        "pattern = '.*'",
        "enum = [\"a\"]",
        "kind = \"integer\"",
        "kind = \"path\"\nunder = \"/var/lib/x\"",
    ] {
        assert_eq!(
            refused(&checker(decl), "-5"),
            Refusal::LeadingDash,
            "{decl}"
        );
    }
    let allowed = checker("pattern = '-?[a-z]+'\nallow_leading_dash = true");
    assert_eq!(allowed.admit("-abc").unwrap(), "-abc");
    let negative = checker("kind = \"integer\"\nallow_leading_dash = true");
    assert_eq!(negative.admit("-5").unwrap(), "-5");
}

#[test]
fn a_pattern_is_anchored_at_both_ends() {
    let c = checker("pattern = '[a-z]+'");
    assert_eq!(c.admit("abc").unwrap(), "abc");
    for bad in ["abc1", "1abc", "ab c", "ABC"] {
        assert_eq!(refused(&c, bad), Refusal::Pattern, "{bad}");
    }
    // An alternation cannot escape the anchors.
    let alt = checker("pattern = 'a|b'");
    assert!(alt.admit("a").is_ok());
    assert_eq!(refused(&alt, "ax"), Refusal::Pattern);
    assert_eq!(refused(&alt, "xb"), Refusal::Pattern);
    // `$` does not match before a trailing newline here, and newlines are refused before the pattern anyway.
    let url = checker(r"pattern = 'https://[a-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?'");
    assert!(url.admit("https://backup.example.net:8443/v1/x").is_ok());
    for bad in [
        "http://x",
        "https://x y",
        "file:///etc/passwd",
        "https://x/?a=b",
    ] {
        assert!(url.admit(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_enum_allows_exactly_its_values() {
    let c = checker("enum = [\"daily\", \"weekly\"]");
    assert_eq!(c.admit("daily").unwrap(), "daily");
    for bad in ["Daily", "daily ", "dail", "monthly"] {
        assert_eq!(refused(&c, bad), Refusal::NotListed, "{bad}");
    }
}

#[test]
fn hostnames_follow_rfc_1123_or_are_ip_literals() {
    let c = checker("kind = \"hostname\"");
    for ok in [
        "localhost",
        "core-sw1",
        "core-sw1.example.net",
        "a.b-c.d0.example",
        "xn--bcher-kva.example",
        "127.0.0.1",
        "10.20.30.40",
        "::1",
        "fe80::1",
        "2001:db8::8a2e:370:7334",
        "::ffff:192.0.2.1",
    ] {
        assert_eq!(c.admit(ok).unwrap(), ok, "{ok}");
    }
    for bad in [
        "-oProxyCommand=x",
        "a..b",
        ".a",
        "a.",
        "a_b",
        "a-.b",
        "a.-b",
        "host name",
        "127.1",
        "0x7f.1",
        "1.2.3.4.5",
        "256.1.1.1",
        "[::1]",
        "fe80::1%eth0",
        "user@host",
        "host:22",
        "9host",
    ] {
        assert!(c.admit(bad).is_err(), "{bad}");
    }
    assert!(c.admit(&format!("{}.example", "a".repeat(63))).is_ok());
    assert!(c.admit(&format!("{}.example", "a".repeat(64))).is_err());
    let long = std::iter::repeat_n("a".repeat(49), 5)
        .collect::<Vec<_>>()
        .join(".");
    assert_eq!(long.len(), 249);
    assert!(c.admit(&long).is_ok());
    assert!(c.admit(&format!("{long}.abcd")).is_err(), "254 bytes");
}

#[test]
fn integers_are_decimal_in_range_and_normalised() {
    let port = checker("kind = \"integer\"\nmin = 1\nmax = 65535");
    assert_eq!(port.admit("22").unwrap(), "22");
    assert_eq!(port.admit("65535").unwrap(), "65535");
    assert_eq!(
        port.admit("0022").unwrap(),
        "22",
        "leading zeros are dropped"
    );
    for bad in [
        "0",
        "65536",
        "+22",
        "22a",
        "0x16",
        " 22",
        "2 2",
        "1e3",
        "99999999999999999999",
    ] {
        assert!(port.admit(bad).is_err(), "{bad}");
    }
    assert_eq!(
        refused(&port, "70000"),
        Refusal::Integer("1..=65535".into())
    );
    let any = checker("kind = \"integer\"");
    assert_eq!(
        any.admit(&i64::MAX.to_string()).unwrap(),
        i64::MAX.to_string()
    );
    assert_eq!(refused(&any, "x"), Refusal::Integer("i64".into()));
}

#[test]
fn paths_stay_under_their_directory() {
    let c = checker("kind = \"path\"\nunder = \"/var/lib/x\"");
    assert_eq!(c.admit("/var/lib/x/a.conf").unwrap(), "/var/lib/x/a.conf");
    assert_eq!(c.admit("a/b.conf").unwrap(), "/var/lib/x/a/b.conf");
    assert_eq!(c.admit("./a//b/./c").unwrap(), "/var/lib/x/a/b/c");
    assert_eq!(
        c.admit("a/../b").unwrap(),
        "/var/lib/x/b",
        "normalised lexically"
    );
    for bad in [
        "..",
        "../y",
        "a/../../y",
        "/var/lib/x/../y",
        "/var/lib/xy/a",
        "/etc/passwd",
        "/var/lib",
        "/var/lib/x",
        "/var/lib/x/",
        ".",
        "/etc/../var/lib/x/a",
    ] {
        assert!(
            matches!(c.admit(bad), Err(Refusal::Path { .. })),
            "{bad}: {:?}",
            c.admit(bad)
        );
    }
}

#[test]
fn patterns_have_unicode_classes_and_script_classes_are_a_config_error_where_absent() {
    // General categories, boolean properties and the Unicode-aware Perl classes are in every build ...
    let letters = checker(r"pattern = '\p{L}+'");
    assert!(letters.admit("Zürich").is_ok());
    assert_eq!(refused(&letters, "Zürich1"), Refusal::Pattern);
    let word = checker(r"pattern = '\w+'");
    assert!(word.admit("число").is_ok());
    let alpha = checker(r"pattern = '(?i)\p{Alphabetic}+é'");
    assert!(alpha.admit("abcÉ").is_ok());
    // ... script, age and segmentation tables are not in the agent's own feature set (the appliance build,
    // `cross/build`, built alone: docs/operations.md, "Jobs"); a workspace build may have them through another
    // crate's features. Where they are absent, a pattern using them is a config error, never a panic.
    for p in [
        r"\p{Greek}+",
        r"\p{Age:6.0}",
        r"\p{Grapheme_Cluster_Break=Extend}",
    ] {
        if let Err(e) = spec(&format!("pattern = '{p}'")).compile() {
            assert!(e.contains("does not compile"), "{p}: {e}");
        }
    }
}

#[test]
fn declarations_that_cannot_work_are_config_errors() {
    for (decl, needle) in [
        ("kind = \"shell\"", "unknown kind"),
        ("kind = \"hostname\"\npattern = 'a'", "at most one"),
        ("pattern = 'a'\nenum = [\"a\"]", "at most one"),
        ("pattern = '(unclosed'", "does not compile"),
        ("enum = []", "enum is empty"),
        ("enum = [\"-x\"]", "leading '-'"),
        ("enum = [\"a\\nb\"]", "control"),
        ("min = 1", "only to kind = \"integer\""),
        ("kind = \"integer\"\nmin = 5\nmax = 1", "greater than max"),
        ("kind = \"path\"", "needs under"),
        ("kind = \"path\"\nunder = \"relative\"", "absolute"),
        ("kind = \"path\"\nunder = \"/var/../etc\"", ". or .."),
        ("under = \"/var\"", "only to kind = \"path\""),
        ("max_len = 0", "max_len"),
        ("max_len = 5000", "max_len"),
    ] {
        let e = spec(decl).compile().unwrap_err();
        assert!(e.contains(needle), "{decl}: {e}");
    }
    let huge = format!("pattern = '{}'", "a".repeat(MAX_PATTERN_LEN + 1));
    assert!(spec(&huge).compile().unwrap_err().contains("longer"));
    assert!(
        toml::from_str::<ParamSpec>("colour = \"red\"").is_err(),
        "unknown keys"
    );
}

#[test]
fn both_forms_parse() {
    #[derive(Deserialize)]
    struct T {
        params: Params,
    }
    let list: T = toml::from_str("params = [\"host\", \"port\"]").unwrap();
    assert_eq!(list.params, Params::words(["host", "port"]));
    let table: T = toml::from_str(
        "[params.host]\nkind = \"hostname\"\n[params.port]\nkind = \"integer\"\nmax = 9\n",
    )
    .unwrap();
    let names: Vec<&String> = table.params.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["host", "port"]);
    assert!(toml::from_str::<T>("params = [\"a\", \"a\"]").is_err());
    assert!(toml::from_str::<T>("params = \"host\"").is_err());
}
