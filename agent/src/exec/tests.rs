use super::*;

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn injects_only_the_given_variables() {
    let out = run_captured(
        &argv(&["/usr/bin/env"]),
        &[],
        vec![Injected {
            var: "DB_PASSWORD".into(),
            value: Zeroizing::new("s3cret".into()),
        }],
        Duration::from_secs(5),
        4096,
    )
    .await
    .unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.stdout, "DB_PASSWORD=s3cret\n");
}

#[tokio::test]
async fn output_is_bounded_and_exit_codes_reported() {
    let out = run_captured(
        &argv(&[
            "/bin/sh",
            "-c",
            "head -c 10000 /dev/zero | tr '\\0' x; echo err >&2; exit 3",
        ]),
        &["PATH".into()],
        vec![],
        Duration::from_secs(5),
        100,
    )
    .await
    .unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.stdout.len(), 100);
    assert!(out.truncated);
    assert_eq!(out.stderr, "err\n");
}

#[tokio::test]
async fn timeout_kills() {
    let out = run_captured(
        &argv(&["/bin/sleep", "30"]),
        &[],
        vec![],
        Duration::from_millis(200),
        100,
    )
    .await
    .unwrap();
    assert!(out.timed_out);
    assert!(out.elapsed < Duration::from_secs(10));
}

#[tokio::test]
async fn missing_program_is_an_error() {
    let result = run_captured(
        &argv(&["/nonexistent/x"]),
        &[],
        vec![],
        Duration::from_secs(1),
        10,
    )
    .await;
    if std::env::var_os("TESSERA_UNDER_EMULATION").is_some() {
        // qemu-user reports a failed exec in the child (exit 127) rather than from spawn.
        assert!(result.is_err() || result.is_ok_and(|c| c.exit_code != Some(0)));
    } else {
        assert!(result.is_err());
    }
}

#[test]
fn bounded_text_cuts_on_char_boundaries() {
    assert_eq!(lossy_bounded("ééé".as_bytes(), 3), "é");
}
