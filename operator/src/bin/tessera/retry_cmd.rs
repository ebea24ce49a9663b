//! `cred retry NAME` (or `--id ID`): asks the relay to retry a credential's pending and stalled deliveries. The id
//! comes from this operator's catalogue for a name, never from the relay's listing.

use std::process::ExitCode;

use tessera_proto::ids::CredentialId;

use crate::cli::Conn;
use crate::fail;
use crate::session::{api_fail, load_operator, print};

pub(crate) async fn retry(
    conn: &Conn,
    name: Option<&str>,
    id: Option<&str>,
    json: bool,
) -> ExitCode {
    let op = match load_operator(conn) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    let id = match (name, id) {
        (_, Some(id)) => match id.parse::<CredentialId>() {
            Ok(u) => u,
            Err(e) => return fail(2, &format!("--id {id}: {e}")),
        },
        (Some(n), None) => match crate::resolve::credential_id(&op, n) {
            Ok(u) => u,
            Err(e) => return fail(2, &e),
        },
        (None, None) => return fail(2, "give NAME or --id ID"),
    };
    match op
        .client
        .post(
            &format!("/v1/credentials/{id}/retry"),
            &serde_json::json!({}),
        )
        .await
    {
        Ok(v) => {
            let text = format!("retry of {} ({id}) requested", name.unwrap_or("credential"));
            print(json, &v, &tessera_operator::client::escape_control(&text));
            ExitCode::SUCCESS
        }
        Err(e) => api_fail(&e),
    }
}
