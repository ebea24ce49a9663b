//! Workloads waiting for JIT repair, by request id and by name. Several requests for the same missing name share
//! one `credential_missing`.

use std::collections::HashMap;

use tessera_proto::ids::CredentialName;
use tessera_proto::wire::PublicReason;
use tokio::sync::oneshot;
use uuid::Uuid;

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JitOutcome {
    /// The credential is now in the store.
    Delivered,
    /// The relay could not serve it.
    Unavailable(PublicReason),
}

#[derive(Debug)]
struct Pending {
    name: CredentialName,
    replies: Vec<oneshot::Sender<JitOutcome>>,
}

/// The waiting table.
#[derive(Debug, Default)]
pub struct Waiters {
    by_request: HashMap<Uuid, Pending>,
    by_name: HashMap<CredentialName, Uuid>,
}

impl Waiters {
    /// Adds a waiter; returns the request id to publish when no request for `name` is open yet.
    pub fn add(
        &mut self,
        name: CredentialName,
        reply: oneshot::Sender<JitOutcome>,
    ) -> Option<Uuid> {
        if let Some(pending) = self
            .by_name
            .get(&name)
            .and_then(|id| self.by_request.get_mut(id))
        {
            pending.replies.retain(|r| !r.is_closed());
            pending.replies.push(reply);
            return None;
        }
        let id = Uuid::new_v4();
        self.by_name.insert(name.clone(), id);
        self.by_request.insert(
            id,
            Pending {
                name,
                replies: vec![reply],
            },
        );
        Some(id)
    }

    fn finish(&mut self, id: &Uuid, outcome: JitOutcome) {
        if let Some(p) = self.by_request.remove(id) {
            self.by_name.remove(&p.name);
            for r in p.replies {
                let _ = r.send(outcome);
            }
        }
    }

    /// `name` was stored (by any delivery): wake everyone waiting for it.
    pub fn delivered(&mut self, name: &CredentialName) {
        if let Some(id) = self.by_name.get(name).copied() {
            self.finish(&id, JitOutcome::Delivered);
        }
    }

    /// The relay answered `request_id` with a refusal.
    pub fn unavailable(&mut self, request_id: &Uuid, reason: PublicReason) {
        self.finish(request_id, JitOutcome::Unavailable(reason));
    }

    /// Drops requests whose every waiter has given up (timed out), so a later request publishes afresh.
    pub fn prune(&mut self) {
        let dead: Vec<Uuid> = self
            .by_request
            .iter()
            .filter(|(_, p)| p.replies.iter().all(oneshot::Sender::is_closed))
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            if let Some(p) = self.by_request.remove(&id) {
                self.by_name.remove(&p.name);
            }
        }
    }

    /// Open requests.
    pub fn len(&self) -> usize {
        self.by_request.len()
    }

    /// Whether none are open.
    pub fn is_empty(&self) -> bool {
        self.by_request.is_empty()
    }
}

#[cfg(test)]
mod tests;
