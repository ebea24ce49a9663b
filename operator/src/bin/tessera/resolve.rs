//! Names on the command line checked against what this operator holds, never against the relay's answers: a
//! credential name resolved to its id through the operator's catalogue (statements it signed or verified), and
//! agent ids (`--agent`, `grant`) checked against the CA's registry of issued certificates.

use std::path::Path;

use tessera_operator::catalogue::Catalogue;
use tessera_operator::issued::Registry;
use tessera_proto::cert::PinnedCa;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};
use tessera_proto::statement::RevocationList;

use crate::session::OperatorFiles;

/// The id of the credential `arg` names: a name in the catalogue (live, or deleted and so still purging), else an
/// id given as is.
pub(crate) fn credential_id(op: &OperatorFiles, arg: &str) -> Result<CredentialId, String> {
    let catalogue = Catalogue::load(&op.dir).map_err(|e| e.to_string())?;
    if let Ok(name) = CredentialName::new(arg) {
        if let Some(e) = catalogue.latest(&name) {
            return Ok(e.id);
        }
        if let Some((id, _)) = catalogue.deleted.iter().rev().find(|(_, d)| d.name == name) {
            return Ok(*id);
        }
    }
    arg.parse::<CredentialId>().map_err(|_| {
        format!(
            "{arg}: no credential of that name in this operator's catalogue ({}), and not a credential id; \
             `tessera cred ls` lists names and ids, `tessera cred adopt NAME` learns one another operator signed",
            op.dir.join(tessera_operator::catalogue::FILE).display()
        )
    })
}

/// The agent ids in `agents` (`label` is how the command line named them, e.g. `--agent `), each of which must hold a
/// live certificate the CA issued: recorded in the operator directory's registry, unexpired, not replaced, and not
/// revoked by the operator's current revocation list (its copy or the relay's, the newer, both verified).
pub(crate) async fn certified_agents(
    op: &OperatorFiles,
    agents: &[String],
    label: &str,
) -> Result<Vec<AgentId>, String> {
    if agents.is_empty() {
        return Ok(Vec::new());
    }
    let registry = Registry::require(&op.dir).map_err(|e| e.to_string())?;
    let revoked = tessera_operator::revocations::current(&op.client, &op.ca, &op.dir)
        .await
        .map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let file = op.dir.join(tessera_operator::issued::FILE);
    live_agents(&registry, (&op.ca, now, &revoked), agents, label, &file)
}

/// [`certified_agents`] against `registry` (read from `file`), the CA, the time and the revocation list given.
pub(crate) fn live_agents(
    registry: &Registry,
    (ca, now, revoked): (&PinnedCa, i64, &RevocationList),
    agents: &[String],
    label: &str,
    file: &Path,
) -> Result<Vec<AgentId>, String> {
    agents
        .iter()
        .map(|a| {
            let id = AgentId::new(a).map_err(|e| format!("{label}{a}: {e}"))?;
            if registry.live(&id, ca, now, revoked).is_empty() {
                return Err(format!(
                    "{label}{a}: no live certificate issued by the CA for this agent id (not in {}, expired, \
                     replaced or revoked): check the spelling (`tessera agents ls`), or certify it first with \
                     `tessera ca issue-agent`",
                    file.display()
                ));
            }
            Ok(id)
        })
        .collect()
}
