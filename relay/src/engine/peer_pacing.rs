//! Backfill pacing per peer (docs/protocol.md, "Backfill pacing"): a backfill asks one peer for at most
//! `engine.peer_max_in_flight` rewraps at a time. When every peer holding a credential is at that limit, the
//! backfill pauses (the credential goes back to the front of its backlog) and resumes when an answer, a refusal or a
//! timeout frees a place. Without it a registration herd asks the one peer of a credential for every agent's copy
//! at once: its queue outgrows the peer timeout, the rewraps time out, are asked again and time out again.
//!
//! JIT repair, an operator's put or retry and the reconciler are not paced (a workload waits on the first; the
//! others are few). The count is this relay's own and is rebuilt from nothing after a resync or another replica's
//! write (each replica paces what it asked; it is flow control, not a guarantee).

use std::collections::{HashMap, VecDeque};

use tessera_proto::ids::AgentId;

use super::{Engine, Outbound};
use crate::state::StateResult;

/// The rewraps each peer was asked for and has not answered, and the backfills waiting for a place.
#[derive(Debug, Default)]
pub(crate) struct PeerPacing {
    asked: HashMap<uuid::Uuid, AgentId>,
    load: HashMap<AgentId, usize>,
    /// Places freed since the paused backfills were last resumed.
    freed: usize,
    paused: VecDeque<AgentId>,
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
        if !self.paused.contains(target) {
            self.paused.push_back(target.clone());
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

    /// Puts a paused `target` back at the head of the queue (it was resumed and started nothing).
    pub(crate) fn first_again(&mut self, target: &AgentId) {
        if let Some(i) = self.paused.iter().position(|t| t == target) {
            if let Some(t) = self.paused.remove(i) {
                self.paused.push_front(t);
            }
        }
    }

    /// The backfill that has waited longest.
    pub(crate) fn next_paused(&mut self) -> Option<AgentId> {
        self.paused.pop_front()
    }
}

impl Engine {
    /// Resumes paused backfills, longest waiting first, while places freed in this event remain.
    pub(crate) fn resume_paused(&mut self) -> StateResult<Vec<Outbound>> {
        let (mut freed, mut waiting) = self.pacing.take_resumable();
        let mut out = Vec::new();
        while freed > 0 && waiting > 0 {
            waiting -= 1;
            let Some(target) = self.pacing.next_paused() else {
                break;
            };
            let before = self.pacing.asked();
            out.extend(self.pump(&target)?);
            let started = self.pacing.asked().saturating_sub(before);
            if started == 0 {
                // Its peers are still full (`pump` paused it again): it keeps its turn.
                self.pacing.first_again(&target);
            }
            freed = freed.saturating_sub(started.max(1));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
