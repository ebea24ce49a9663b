use super::*;

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn tessera_log_wins_over_rust_log_and_rust_log_over_the_default() {
    let (f, w) = filter_from(
        env(&[("TESSERA_LOG", "debug"), ("RUST_LOG", "error")]),
        "info",
    );
    assert!(f.to_string().split(',').any(|d| d == "debug"), "{f}");
    assert!(w.is_none());
    let (f, _) = filter_from(env(&[("RUST_LOG", "tessera_agent=trace")]), "info");
    assert_eq!(f.to_string(), "tessera_agent=trace");
    let (f, _) = filter_from(env(&[]), "info,tss_esapi=off");
    assert!(f.to_string().contains("tss_esapi=off"));
}

#[test]
fn a_filter_that_does_not_parse_falls_back_to_the_default_with_a_warning() {
    let (f, w) = filter_from(env(&[("RUST_LOG", "[[[")]), "info");
    assert_eq!(f.to_string(), "info");
    assert!(w.is_some_and(|w| w.contains("RUST_LOG")));
}

#[test]
fn log_formats_parse() {
    assert_eq!("text".parse(), Ok(LogFormat::Text));
    assert_eq!("json".parse(), Ok(LogFormat::Json));
    assert_eq!("xml".parse::<LogFormat>(), Err(UnknownLogFormat));
}

#[test]
fn a_bare_verbose_level_keeps_the_libraries_at_info_unless_named() {
    let quiet = quiet_internals("trace");
    for krate in QUIET {
        assert!(quiet.contains(&format!(",{krate}=info")), "{quiet}");
    }
    let named = quiet_internals("debug,rumqttc=trace,hyper[conn]=debug");
    assert!(
        !named.contains("rumqttc=info") && !named.contains("hyper=info"),
        "{named}"
    );
    assert!(
        named.contains("rustls=info") && named.contains("h2=info"),
        "{named}"
    );
    // No bare verbose level: nothing appended (a stricter level already covers the libraries).
    for unchanged in ["info", "warn,tessera_agent=trace", "tessera_relay=debug"] {
        assert_eq!(quiet_internals(unchanged), unchanged);
    }
    let (f, _) = filter_from(env(&[("TESSERA_LOG", "TRACE")]), "info");
    assert!(f.to_string().contains("rumqttc=info"), "{f}");
}
