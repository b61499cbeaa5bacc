//! The write path: load state, `decide`, append, retry on conflict.
//!
//! Every way into Baton — reports from the ingest consumer, commands over
//! NATS and HTTP, the SLA timer's ticks — goes through [`Engine::execute`],
//! so there is one implementation of the rules' side effects.
//!
//! Concurrency: commands on one handoff are serialized by the slot's write
//! lock, so appends to one handoff stay ordered; commands on different
//! handoffs run concurrently and their appends are pipelined (bounded by the
//! store's semaphore). Between processes, the append's expected last subject
//! sequence decides the race: the loser reads what the winner stored,
//! re-decides on the new state (usually: nothing left to do) and moves on.
//! The `Nats-Msg-Id` is `<handoff>:<expected seq>` — only one commit can
//! ever follow a given sequence on a subject, so a retried append is stored
//! once and two daemons' identical decisions collapse into one.

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use crate::domain::{
    decide, keyless_handoff_id, Command, Commit, DomainError, Event, Handoff, IncidentCommand,
    Policy, Report,
};
use crate::projector::{Projection, Slot};
use crate::store::{EventStore, StoreError};

/// Why a command did not complete.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The rules refused it (reply: the domain code; HTTP 404/409/422).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// JetStream failed; nothing or the whole decision was stored (reply
    /// `unavailable`, HTTP 503; a report is redelivered).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other writers kept winning the race (reply `conflict`, HTTP 409).
    #[error("gave up after {0} concurrent-write conflicts")]
    Contended(u32),
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub handoff_id: Uuid,
    /// State after the command.
    pub handoff: Option<Handoff>,
    /// Events stored by this command (empty when nothing was due).
    pub events: Vec<Event>,
    /// Stream sequence of the stored commit.
    pub seq: Option<u64>,
}

const MAX_ATTEMPTS: u32 = 8;

/// Executes commands against the event log.
pub struct Engine {
    store: EventStore,
    projection: Arc<Projection>,
    policy: Arc<Policy>,
}

impl Engine {
    pub fn new(store: EventStore, projection: Arc<Projection>, policy: Arc<Policy>) -> Self {
        Self {
            store,
            projection,
            policy,
        }
    }

    pub fn projection(&self) -> &Arc<Projection> {
        &self.projection
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Opens (or joins) the handoff for a validated report.
    pub async fn report(
        &self,
        template: &str,
        report: Report,
        warnings: Vec<String>,
        source: ReportSource,
    ) -> Result<Outcome, EngineError> {
        let id = crate::domain::handoff_id_for(template, &report)
            .unwrap_or_else(|| keyless_handoff_id(source.published_ms, source.seq));
        let cmd = Command::Incident(IncidentCommand::Open {
            template: template.to_string(),
            report,
            warnings,
            source: Some(format!("report:{}", source.seq)),
        });
        self.execute(id, cmd).await
    }

    /// Runs one command on one handoff.
    pub async fn execute(&self, id: Uuid, cmd: Command) -> Result<Outcome, EngineError> {
        let slot = self.projection.slot(id);
        let result = self.execute_in(&slot, id, &cmd).await;
        // Any refusal or failure on a handoff that does not exist must not
        // leave its empty slot behind (a client retrying bad starts in a
        // loop would grow memory without bound).
        if result.is_err() {
            self.projection.forget_if_empty(id, slot);
        }
        result
    }

    async fn execute_in(
        &self,
        slot: &Slot,
        id: Uuid,
        cmd: &Command,
    ) -> Result<Outcome, EngineError> {
        let _serial = slot.write.lock().await;
        let mut refreshed = false;
        for _ in 0..MAX_ATTEMPTS {
            let (state, last_seq) = {
                let e = slot.entry.lock().expect("not poisoned");
                (e.state.clone(), e.last_seq)
            };
            let now = Utc::now();
            let new = match decide(state.as_ref(), cmd, now, &self.policy) {
                // Another daemon may have opened it and our projector lags.
                Err(DomainError::NotFound) if !refreshed => {
                    self.refresh(slot, id).await?;
                    refreshed = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
                Ok(v) => v,
            };
            if new.is_empty() {
                return Ok(Outcome {
                    handoff_id: id,
                    handoff: state,
                    events: vec![],
                    seq: None,
                });
            }
            let events: Vec<Event> = new
                .into_iter()
                .map(|e| e.seal(Uuid::now_v7(), id, now))
                .collect();
            let commit = Commit { events };
            let msg_id = format!("{id}:{last_seq}");
            match self.store.append(id, last_seq, &msg_id, &commit).await {
                Ok(a) if !a.duplicate => {
                    self.projection.apply_commit(slot, a.seq, &commit, false);
                    let handoff = slot.entry.lock().expect("not poisoned").state.clone();
                    let kinds: Vec<&str> = commit.events.iter().map(|e| e.kind()).collect();
                    tracing::info!(handoff_id = %id, seq = a.seq, events = ?kinds, "events stored");
                    return Ok(Outcome {
                        handoff_id: id,
                        handoff,
                        events: commit.events,
                        seq: Some(a.seq),
                    });
                }
                Ok(_) | Err(StoreError::Conflict) => {
                    tracing::debug!(handoff_id = %id, "lost an append race; reloading");
                    self.refresh(slot, id).await?;
                    refreshed = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Contended(MAX_ATTEMPTS))
    }

    /// Reads and applies whatever the stream has past the slot's sequence.
    async fn refresh(&self, slot: &Slot, id: Uuid) -> Result<(), StoreError> {
        let after = slot.entry.lock().expect("not poisoned").last_seq;
        for (seq, commit) in self.store.read_after(id, after).await? {
            self.projection.apply_commit(slot, seq, &commit, false);
        }
        Ok(())
    }

    /// The handoff's state now.
    pub fn get(&self, id: Uuid) -> Option<Handoff> {
        self.projection.get(id)
    }

    /// Reads the handoff from the stream if this process has not seen it yet.
    pub async fn load(&self, id: Uuid) -> Result<Option<Handoff>, StoreError> {
        if let Some(h) = self.projection.get(id) {
            return Ok(Some(h));
        }
        let slot = self.projection.slot(id);
        let read = self.refresh(&slot, id).await;
        let h = slot.entry.lock().expect("not poisoned").state.clone();
        if h.is_none() {
            self.projection.forget_if_empty(id, slot);
        }
        read.map(|()| h)
    }
}

/// Where a report sits in `BATON_REPORTS`.
#[derive(Debug, Clone, Copy)]
pub struct ReportSource {
    pub seq: u64,
    /// The stream's receive time, Unix milliseconds.
    pub published_ms: u64,
}
