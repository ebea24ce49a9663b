use super::*;

#[test]
fn the_three_requests_parse() {
    assert_eq!(
        parse_request_line(b"{\"op\":\"get\",\"name\":\"db\"}\n").unwrap(),
        Request::Get {
            name: CredentialName::new("db").unwrap()
        }
    );
    assert_eq!(
        parse_request_line(b"{\"op\":\"meta\",\"name\":\"db\"}\n").unwrap(),
        Request::Meta {
            name: CredentialName::new("db").unwrap()
        }
    );
    assert_eq!(
        parse_request_line(b"{\"op\":\"list\"}\n").unwrap(),
        Request::List
    );
}

#[test]
fn unterminated_and_oversized_lines_are_refused_before_parsing() {
    assert!(parse_request_line(b"{\"op\":\"list\"}")
        .unwrap_err()
        .contains("unterminated"));
    let mut long = b"{\"op\":\"list\"}".to_vec();
    long.resize(MAX_REQUEST_BYTES, b' ');
    long.push(b'\n');
    assert_eq!(long.len(), MAX_REQUEST_BYTES + 1);
    assert!(parse_request_line(&long).unwrap_err().contains("too long"));
    long.truncate(MAX_REQUEST_BYTES - 1);
    long.push(b'\n');
    assert_eq!(parse_request_line(&long).unwrap(), Request::List);
}

#[test]
fn unknown_fields_ops_and_bad_names_are_refused() {
    for line in [
        &b"{\"op\":\"list\",\"x\":1}\n"[..],
        b"{\"op\":\"delete\",\"name\":\"db\"}\n",
        b"{\"op\":\"get\",\"name\":\"a/b\"}\n",
        b"{\"op\":\"get\"}\n",
        b"\xff\n",
    ] {
        assert!(
            parse_request_line(line)
                .unwrap_err()
                .starts_with("bad request"),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn rotate_store_key_parses_with_and_without_a_sealer() {
    assert_eq!(
        parse_request_line(b"{\"op\":\"rotate_store_key\"}\n").unwrap(),
        Request::RotateStoreKey { to: None }
    );
    assert_eq!(
        parse_request_line(b"{\"op\":\"rotate_store_key\",\"to\":\"tpm\"}\n").unwrap(),
        Request::RotateStoreKey {
            to: Some(crate::config::SealerBackend::Tpm)
        }
    );
    for line in [
        &b"{\"op\":\"rotate_store_key\",\"to\":\"hsm\"}\n"[..],
        b"{\"op\":\"rotate_store_key\",\"now\":true}\n",
    ] {
        assert!(
            parse_request_line(line).is_err(),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn status_parses_and_takes_no_fields() {
    assert_eq!(
        parse_request_line(b"{\"op\":\"status\"}\n").unwrap(),
        Request::Status
    );
    assert!(parse_request_line(b"{\"op\":\"status\",\"verbose\":true}\n").is_err());
}
