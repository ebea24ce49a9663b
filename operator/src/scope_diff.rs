//! How a scope changes, printed before it is signed, and the check that it changes only the way the operator
//! asked.

use tessera_proto::ids::AgentId;
use tessera_proto::statement::Scope;

/// The difference between two scopes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScopeDiff {
    /// The scope before, as text (`all` or the agent list).
    pub from: String,
    /// The scope after.
    pub to: String,
    /// Agents added (empty when either side is `all`).
    pub added: Vec<AgentId>,
    /// Agents removed (empty when either side is `all`).
    pub removed: Vec<AgentId>,
}

fn text(s: &Scope) -> String {
    match s {
        Scope::All => "all".to_owned(),
        Scope::Explicit { agents } => format!(
            "[{}]",
            agents
                .iter()
                .map(AgentId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl ScopeDiff {
    /// From `from` to `to`.
    pub fn between(from: &Scope, to: &Scope) -> Self {
        let (added, removed) = match (from, to) {
            (Scope::Explicit { agents: a }, Scope::Explicit { agents: b }) => (
                b.iter().filter(|x| !a.contains(x)).cloned().collect(),
                a.iter().filter(|x| !b.contains(x)).cloned().collect(),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        Self {
            from: text(from),
            to: text(to),
            added,
            removed,
        }
    }

    /// Checks that the change only adds (`grant`) or only removes (`!grant`) agents among `asked`.
    pub fn only(&self, grant: bool, asked: &[AgentId]) -> Result<(), String> {
        let (moved, other) = if grant {
            (&self.added, &self.removed)
        } else {
            (&self.removed, &self.added)
        };
        if !other.is_empty() {
            return Err(format!(
                "refusing to sign: the scope change {} -> {} would also {} {}",
                self.from,
                self.to,
                if grant { "remove" } else { "add" },
                other
                    .iter()
                    .map(AgentId::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(a) = moved.iter().find(|a| !asked.contains(a)) {
            return Err(format!(
                "refusing to sign: the scope change {} -> {} touches {} which was not asked for",
                self.from,
                self.to,
                a.as_str()
            ));
        }
        if moved.is_empty() && self.from == self.to {
            return Err(format!("the scope is already {}", self.from));
        }
        Ok(())
    }
}

impl std::fmt::Display for ScopeDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scope {} -> {}", self.from, self.to)?;
        for a in &self.added {
            write!(f, " +{}", a.as_str())?;
        }
        for a in &self.removed {
            write!(f, " -{}", a.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
