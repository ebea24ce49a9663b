//! Names on the command line checked against what this operator holds, never against the relay's answers: a
//! credential name resolved to its id through the operator's catalogue (statements it signed or verified), and
//! agent ids (`--agent`, `grant`) checked against the CA's registry of issued certificates.

use tessera_operator::catalogue::Catalogue;
use tessera_operator::issued::Registry;
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
/// certificate the CA issued (recorded in the operator directory's registry, unexpired, not replaced).
pub(crate) fn certified_agents(
    op: &OperatorFiles,
    agents: &[String],
    label: &str,
) -> Result<Vec<AgentId>, String> {
    if agents.is_empty() {
        return Ok(Vec::new());
    }
    let registry = Registry::require(&op.dir).map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    agents
        .iter()
        .map(|a| {
            let id = AgentId::new(a).map_err(|e| format!("{label}{a}: {e}"))?;
            if registry.live(&id, &op.ca, now, &RevocationList::empty()).is_empty() {
                return Err(format!(
                    "{label}{a}: no live certificate issued by the CA for this agent id (not in {}, expired or \
                     replaced): check the spelling (`tessera agents ls`), or certify it first with `tessera ca \
                     issue-agent`",
                    op.dir.join(tessera_operator::issued::FILE).display()
                ));
            }
            Ok(id)
        })
        .collect()
}
