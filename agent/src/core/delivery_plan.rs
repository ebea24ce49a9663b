//! The plan of a batch of messages on the agent's down topic (docs/protocol.md, "Agent delivery handling"): which
//! deliveries are checked and stored together (one flush, then their answers), and where the batch stops to store
//! and answer what it has before going on. Pure: it sees only what each message is, never a key, the store or the
//! network; the core worker (`core.rs`) checks, stores, answers and acknowledges each step in order.
//!
//! The rules:
//! - Deliveries are grouped in arrival order. A delivery of a credential (by id) or of a name already in the group
//!   closes the group: what the group holds is stored and answered first, and the later delivery is checked
//!   against it (two versions of one credential, the same delivery twice, two credentials under one name).
//! - A batched delivery counts as a delivery of each of its credentials (its items among themselves are the core's:
//!   a credential twice in one batch is refused the second time).
//! - Any other message (a rewrap request, a job, a purge …) closes the group and is handled on its own, so
//!   it sees every delivery before it stored.
//! - A dropped message (retained, malformed, on another topic) stays where it is in its group: it is only
//!   acknowledged, in order, since the broker expects acknowledgements in the order it sent.

use tessera_proto::ids::{CredentialId, CredentialName};

/// What one message of a batch is, as far as the plan needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// A delivery (one credential, or a batched delivery of several) of credentials `id` under `name`, as their
    /// statements say before they are verified (only to order the batch: the same bytes are verified when each is
    /// checked); a statement that does not parse is left out (the check refuses it).
    Delivery(Vec<(CredentialId, CredentialName)>),
    /// Any other message for the agent.
    Other,
    /// A message that is only acknowledged.
    Dropped,
}

/// One step of the plan, carrying the caller's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step<T> {
    /// Check these deliveries, store the accepted ones together (one flush), then answer and acknowledge each in
    /// order (dropped messages among them are only acknowledged).
    Group(Vec<T>),
    /// Handle this message on its own, then acknowledge it.
    Alone(T),
}

/// The steps for `batch`, in order; every item appears in exactly one step.
pub(super) fn plan<T>(batch: impl IntoIterator<Item = (Kind, T)>) -> Vec<Step<T>> {
    let mut steps = Vec::new();
    let mut group: Vec<T> = Vec::new();
    let mut held: Vec<(CredentialId, CredentialName)> = Vec::new();
    for (kind, item) in batch {
        match kind {
            Kind::Delivery(keys) => {
                if keys
                    .iter()
                    .any(|(id, name)| held.iter().any(|(i, n)| i == id || n == name))
                {
                    close(&mut group, &mut held, &mut steps);
                }
                held.extend(keys);
                group.push(item);
            }
            Kind::Dropped => group.push(item),
            Kind::Other => {
                close(&mut group, &mut held, &mut steps);
                steps.push(Step::Alone(item));
            }
        }
    }
    close(&mut group, &mut held, &mut steps);
    steps
}

/// Ends the group being built, if any.
fn close<T>(
    group: &mut Vec<T>,
    held: &mut Vec<(CredentialId, CredentialName)>,
    steps: &mut Vec<Step<T>>,
) {
    if !group.is_empty() {
        steps.push(Step::Group(std::mem::take(group)));
    }
    held.clear();
}

#[cfg(test)]
mod tests;
