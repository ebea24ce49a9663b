//! Backfill pacing per peer (docs/protocol.md, "Backfill pacing"): a backfill asks one peer for at most
//! `engine.peer_max_in_flight` rewraps at a time. When every peer holding a credential is at that limit, the
//! backfill pauses (the credential goes back to the front of its backlog) and resumes when an answer, a refusal or a
//! timeout frees a place. Without it a registration herd asks the one peer of a credential for every agent's copy
//! at once: its queue outgrows the peer timeout, the rewraps time out, are asked again and time out again.
//!
//! JIT repair, an operator's put or retry and the reconciler are not paced (a workload waits on the first; the
//! others are few). The count is this relay's own and is rebuilt from nothing after a resync or another replica's
//! write (each replica paces what it asked; it is flow control, not a guarantee).

use std::collections::{HashMap, HashSet, VecDeque};

use tessera_proto::ids::{AgentId, CredentialId};

use super::{Engine, Outbound};
use crate::state::StateResult;

/// The rewraps each peer was asked for and has not answered, and the backfills waiting for a place.
#[derive(Debug, Default)]
pub(crate) struct PeerPacing {
    asked: HashMap<uuid::Uuid, AgentId>,
    load: HashMap<AgentId, usize>,
    /// Places freed since the paused backfills were last resumed.
    freed: usize,
    /// The paused backfills, longest waiting first, and the same as a set.
    paused: VecDeque<AgentId>,
    waiting: HashSet<AgentId>,
}

impl PeerPacing {
    /// Records that rewrap `request` now awaits `peer` (or no peer: answered, moved on to the target, or ended).
    pub(crate) fn track(&mut self, request: uuid::Uuid, peer: Option<&AgentId>) {
        let before = match peer {
            Some(p) => self.asked.insert(request, p.clone()),
            None => self.asked.remove(&request),
        };
        if before.as_ref() == peer {
            return;
        }
        if let Some(old) = before {
            if let Some(n) = self.load.get_mut(&old) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.load.remove(&old);
                }
            }
            self.freed += 1;
        }
        if let Some(p) = peer {
            *self.load.entry(p.clone()).or_default() += 1;
        }
    }

    /// Rewraps `peer` was asked for and has not answered.
    pub(crate) fn load(&self, peer: &AgentId) -> usize {
        self.load.get(peer).copied().unwrap_or(0)
    }

    /// Rewraps awaiting any peer.
    pub(crate) fn asked(&self) -> usize {
        self.asked.len()
    }

    /// Forgets the counts (after a resync or another replica's write); paused backfills stay paused.
    pub(crate) fn forget_counts(&mut self) {
        self.asked.clear();
        self.load.clear();
        self.freed += 1;
    }

    /// `target`'s backfill waits for a place.
    pub(crate) fn pause(&mut self, target: &AgentId) {
        if self.waiting.insert(target.clone()) {
            self.paused.push_back(target.clone());
        }
    }

    /// Pauses `targets`, with a place freed for each, so that the next event or tick tries them.
    pub(crate) fn pause_all(&mut self, targets: &[AgentId]) {
        for t in targets {
            self.pause(t);
        }
        self.freed += targets.len();
    }

    /// Whether `target`'s backfill waits for a place.
    pub(crate) fn is_paused(&self, target: &AgentId) -> bool {
        self.waiting.contains(target)
    }

    /// `target` is no longer waiting (it was resumed).
    pub(crate) fn unpause(&mut self, target: &AgentId) {
        if self.waiting.remove(target) {
            if let Some(i) = self.paused.iter().rposition(|t| t == target) {
                self.paused.remove(i);
            }
        }
    }

    /// The places freed since the last call, and the backfills waiting (none when nothing was freed).
    pub(crate) fn take_resumable(&mut self) -> (usize, usize) {
        if self.paused.is_empty() {
            self.freed = 0;
            return (0, 0);
        }
        (std::mem::take(&mut self.freed), self.paused.len())
    }

    /// Puts `targets` (resumed, and nothing started) back at the head of the queue, in their order.
    pub(crate) fn first_again(&mut self, targets: Vec<AgentId>) {
        for t in targets.into_iter().rev() {
            if self.waiting.insert(t.clone()) {
                self.paused.push_front(t);
            }
        }
    }

    /// A target stored a credential: it is now a holder with room of its own, a place for the paused backfills.
    pub(crate) fn holder_added(&mut self) {
        if !self.paused.is_empty() {
            self.freed += 1;
        }
    }

    /// Keeps `freed` places for the next resume.
    pub(crate) fn give_back(&mut self, freed: usize) {
        self.freed += freed;
    }

    /// Once a tick: a paused backfill is tried even when no place was seen to free (a count forgotten, another
    /// replica's answer), so that none waits for the reconciler.
    pub(crate) fn nudge(&mut self) {
        if !self.paused.is_empty() {
            self.freed = self.freed.max(1);
        }
    }

    /// The backfill that has waited longest.
    pub(crate) fn next_paused(&mut self) -> Option<AgentId> {
        let t = self.paused.pop_front()?;
        self.waiting.remove(&t);
        Some(t)
    }
}

/// Paused backfills tried per event at most (each try reads the store; the rest wait for the next event or tick).
const MAX_RESUME_TRIES: usize = 16;

/// Paused backfills passed over per event at most, for waiting on a credential whose peers were just found full
/// (each pass is a look at memory).
const MAX_RESUME_SKIPS: usize = 256;

impl Engine {
    /// Resumes paused backfills, longest waiting first, while places freed in this event remain or the last one
    /// resumed found room (at a holder that was not full: the next may find room there too), each tried once at
    /// most and [`MAX_RESUME_TRIES`] per event. One whose peers are still full keeps its place in the queue, and
    /// the backfills behind it whose next credential is that same one are not tried in this event (they would read
    /// every holder of the credential only to find the same peers full: in a herd, that was nearly all of the
    /// relay's work); those waiting on other credentials are.
    ///
    /// Spending only the places freed would tie a herd to the answer rate of its first full peer, however many
    /// targets have since become holders with room (docs/benchmarks.md, "Fleet load").
    pub(crate) fn resume_paused(&mut self) -> StateResult<Vec<Outbound>> {
        let (mut freed, waiting) = self.pacing.take_resumable();
        let mut tries = waiting.min(MAX_RESUME_TRIES);
        let mut skips = MAX_RESUME_SKIPS;
        let mut out = Vec::new();
        let mut still = Vec::new();
        let mut found_room = false;
        let mut full: HashSet<CredentialId> = HashSet::new();
        while (freed > 0 || found_room) && tries > 0 {
            let Some(target) = self.pacing.next_paused() else {
                break;
            };
            if self
                .next_of_backlog(&target)
                .is_some_and(|c| full.contains(&c))
            {
                still.push(target);
                skips = skips.saturating_sub(1);
                if skips == 0 {
                    break;
                }
                continue;
            }
            tries -= 1;
            let before = self.pacing.asked();
            let pumped = self.pump(&target);
            let started = self.pacing.asked().saturating_sub(before);
            // Paused again by `pump` with nothing started: its peers are still full, and it keeps its turn (its
            // backlog starts again with the credential that found them full). Not paused again: its backfill went on
            // or ended (another delivery pumped it meanwhile), and it leaves the queue.
            if started == 0 && self.pacing.is_paused(&target) {
                self.pacing.unpause(&target);
                full.extend(self.next_of_backlog(&target));
                still.push(target);
                out.extend(pumped?);
                found_room = false;
                continue;
            }
            out.extend(pumped?);
            freed = freed.saturating_sub(started);
            found_room = started > 0;
        }
        self.pacing.first_again(still);
        // Places not used because the tries ran out are kept for the next event or tick; not when a backfill found
        // its peers still full (the next answer, new holder or tick tries again, rather than every event).
        if full.is_empty() {
            self.pacing.give_back(freed);
        }
        Ok(out)
    }

    /// The credential `target`'s backfill takes next, if its backlog is in memory.
    fn next_of_backlog(&self, target: &AgentId) -> Option<CredentialId> {
        self.backlog.get(target).and_then(|b| b.front()).copied()
    }

    /// After a resync or at start: every agent listed `backfilling` is paused, to be resumed by the next event or
    /// tick (a paused backfill has nothing in flight whose answer or timeout would resume it).
    pub(crate) fn pause_backfilling(&mut self) {
        match self.store.backend().agents() {
            Ok(agents) => {
                let backfilling: Vec<AgentId> = agents
                    .into_iter()
                    .filter(|a| a.state == tessera_proto::wire::AgentState::Backfilling)
                    .map(|a| a.id)
                    .collect();
                self.pacing.pause_all(&backfilling);
            }
            Err(e) => super::log_state(&e),
        }
    }
}

#[cfg(test)]
mod tests;
