//! Time: in-flight rewraps that time out move to the next peer (at most `max_peers`, `peer_timeout_ms` each), and
//! every `reconcile_interval_ms` the reconciler retries at most `reconcile_batch` due rows of connected agents.

use tessera_proto::wire::AgentState;

use super::{Engine, Outbound};
use crate::alerts::{AlertKind, Subject};
use crate::state::{DeliveryState, StateResult};

/// How often the certificate-expiry and overdue-purge checks run, ms.
const LIFECYCLE_CHECK_MS: u64 = 3_600_000;

impl Engine {
    /// Call about once a second.
    pub(crate) fn tick_staged(&mut self) -> StateResult<Vec<Outbound>> {
        let mut out = self.expire()?;
        self.pacing.nudge();
        out.extend(self.resume_paused()?);
        let now = self.now_ms();
        let interval = self.cfg.reconcile_interval_ms;
        // One replica sweeps per interval (the first to take the slot: [`crate::coordination`]).
        if now.saturating_sub(self.last_reconcile_ms) >= interval {
            self.last_reconcile_ms = now;
            if self.coord.reconciler_turn(now, interval) {
                self.metrics.reconciler_sweeps += 1;
                out.extend(self.reconcile()?);
                if self
                    .last_lifecycle_check_ms
                    .is_none_or(|t| now.saturating_sub(t) >= LIFECYCLE_CHECK_MS)
                {
                    self.last_lifecycle_check_ms = Some(now);
                    self.check_certificates()?;
                    self.check_purges()?;
                }
            }
        }
        self.coord.probe(now);
        if self.coord.degraded_alert_due(now) {
            let since = self.coord.status().degraded_since_ms.unwrap_or(now);
            let replica = self.coord.replica().to_owned();
            self.alert(
                AlertKind::RedisCoordinationDegraded,
                Subject::Replica(&replica),
                format!(
                    "replica {replica} has not reached Redis for {} s: it coordinates in memory (its own flood \
                     counts, a reconciler sweep of its own)",
                    now.saturating_sub(since) / 1000
                ),
            )?;
        }
        Ok(out)
    }

    /// In-flight deliveries whose stage timed out take their lifecycle's next step.
    fn expire(&mut self) -> StateResult<Vec<Outbound>> {
        let now = self.now_ms();
        let mut out = Vec::new();
        for p in self.store.pendings()? {
            let Some(step) = p.on_tick(now) else {
                continue;
            };
            tracing::info!(request = %p.request_id, stage = ?p.stage, "rewrap timed out");
            out.extend(self.settle(&p, step, None)?);
        }
        Ok(out)
    }

    /// One reconciler pass.
    pub(crate) fn reconcile(&mut self) -> StateResult<Vec<Outbound>> {
        let now = self.now_ms();
        let busy: Vec<_> = self
            .store
            .pendings()?
            .into_iter()
            .map(|p| (p.credential, p.target))
            .collect();
        let mut due = Vec::new();
        for row in self.store.deliveries()? {
            if due.len() >= self.cfg.reconcile_batch {
                break;
            }
            if row.state != DeliveryState::Pending
                || row.next_attempt_ms > now
                || busy.contains(&(row.credential, row.agent.clone()))
            {
                continue;
            }
            let connected = self
                .store
                .agent(&row.agent)?
                .is_some_and(|a| a.state != AgentState::Offline);
            let live = self
                .store
                .credential(&row.credential)?
                .is_some_and(|c| !c.deleted && c.version == row.version);
            if connected && live {
                due.push(row);
            }
        }
        let mut out = Vec::new();
        for row in due {
            out.extend(self.start_delivery(&row.credential, &row.agent, None)?);
        }
        Ok(out)
    }
}
