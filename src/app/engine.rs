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
    apply, decide, keyless_handoff_id, occurrence_id, Command, Commit, DomainError, Event,
    EventData, Handoff, Incident, IncidentCommand, Policy, Report, Seen,
};
use crate::projector::{Hint, Projection, Slot};
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
    /// The handoff it ran on.
    pub handoff_id: Uuid,
    /// State after the command.
    pub handoff: Option<Handoff>,
    /// Events stored by this command (empty when nothing was due).
    pub events: Vec<Event>,
    /// Stream sequence of the stored commit.
    pub seq: Option<u64>,
}

/// What a report did: the command's outcome, told as the reply says it.
#[derive(Debug, Clone)]
pub struct Reported {
    /// The outcome on the handoff the report went to.
    pub outcome: Outcome,
    /// The report opened that handoff (its first report), whether now or
    /// earlier (a redelivery).
    pub opened: bool,
}

impl Reported {
    fn new(outcome: Outcome, seq: u64) -> Self {
        let opened = outcome
            .handoff
            .as_ref()
            .and_then(Handoff::as_incident)
            .is_some_and(|i| i.first_report == Some(seq));
        Self { outcome, opened }
    }

    /// The incident after the report.
    pub fn incident(&self) -> Option<&Incident> {
        self.outcome.handoff.as_ref().and_then(Handoff::as_incident)
    }
}

/// Appends tried per command before it gives up as `Contended`.
const MAX_ATTEMPTS: u32 = 8;

/// Executes commands against the event log.
pub struct Engine {
    store: EventStore,
    projection: Arc<Projection>,
    policy: Arc<Policy>,
    /// Who is on call: targets are resolved against it after `decide`.
    roster: Arc<super::oncall::Roster>,
}

impl Engine {
    /// An engine appending to `store` and applying to `projection`.
    pub fn new(store: EventStore, projection: Arc<Projection>, policy: Arc<Policy>) -> Self {
        Self {
            store,
            projection,
            policy,
            roster: Arc::default(),
        }
    }

    /// The same engine resolving targets against `roster` (without one,
    /// the roster is empty: every `rotation:`/`person:` target is
    /// unresolved and labels stay labels).
    pub fn with_roster(mut self, roster: Arc<super::oncall::Roster>) -> Self {
        self.roster = roster;
        self
    }

    /// The on-call roster targets are resolved against.
    pub fn roster(&self) -> &Arc<super::oncall::Roster> {
        &self.roster
    }

    /// The current state it decides on.
    pub fn projection(&self) -> &Arc<Projection> {
        &self.projection
    }

    /// The event log it appends to.
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The rules' configuration.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Opens, joins or recurs the handoff for a validated report.
    ///
    /// A keyless report opens a handoff of its own. A keyed one walks its
    /// key's occurrences ([`occurrence_id`] 1, 2, …): each is resolved
    /// before the next opens, so the walk ends at the open one (joined:
    /// `reported_again`) or past the last (opened: the first occurrence, or
    /// a recurrence linked to the resolved one before it). A report already
    /// recorded on any occurrence (a redelivery) changes nothing, however
    /// many reports came since: the state answers when it can
    /// ([`Incident::has_report`]), the log when it cannot. Every daemon
    /// derives the same ids, and the next occurrence's first append expects
    /// sequence 0, so an occurrence is decided once.
    pub async fn report(
        &self,
        template: &str,
        report: Report,
        warnings: Vec<String>,
        source: ReportSource,
    ) -> Result<Reported, EngineError> {
        let origin = Some(format!("report:{}", source.seq));
        let Some(key) = crate::domain::dedup_key_for(&report) else {
            let id = keyless_handoff_id(source.published_ms, source.seq);
            let cmd = Command::Incident(IncidentCommand::Open {
                template: template.to_string(),
                report,
                warnings,
                source: origin,
            });
            return Ok(Reported::new(self.execute(id, cmd).await?, source.seq));
        };

        for _ in 0..MAX_ATTEMPTS {
            if let Some(done) = self
                .report_on_key(template, &key, &report, &warnings, source)
                .await?
            {
                return Ok(done);
            }
        }
        Err(EngineError::Contended(MAX_ATTEMPTS))
    }

    /// One walk over a key's occurrences; `None` when the one it chose was
    /// resolved meanwhile (another daemon, an integration's resolve) and the
    /// walk must start again.
    async fn report_on_key(
        &self,
        template: &str,
        key: &str,
        report: &Report,
        warnings: &[String],
        source: ReportSource,
    ) -> Result<Option<Reported>, EngineError> {
        let origin = Some(format!("report:{}", source.seq));
        let walk = self.walk_key(template, key, Some(source.seq)).await?;
        if walk.recorded {
            let outcome = Outcome {
                handoff_id: walk.id,
                handoff: walk.state,
                events: vec![],
                seq: None,
            };
            return Ok(Some(Reported::new(outcome, source.seq)));
        }
        let (template, report, warnings) =
            (template.to_string(), report.clone(), warnings.to_vec());
        // A team handoff under the same key: decide refuses the report.
        let incident = walk.state.as_ref().and_then(Handoff::as_incident);
        let cmd = match (incident, walk.previous) {
            (None, Some(of)) => IncidentCommand::Recur {
                template,
                report,
                warnings,
                source: origin,
                of,
                occurrence: walk.n,
            },
            _ => IncidentCommand::Open {
                template,
                report,
                warnings,
                source: origin,
            },
        };
        match self.execute(walk.id, Command::Incident(cmd)).await {
            Ok(outcome) => {
                // The next report of this key starts where this one landed.
                let hint = Hint {
                    n: walk.n,
                    id: walk.id,
                    before: walk.before,
                };
                self.projection.note_occurrence(walk.first, hint);
                Ok(Some(Reported::new(outcome, source.seq)))
            }
            Err(EngineError::Domain(DomainError::Resolved)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Walks a key's occurrences ([`occurrence_id`] 1, 2, …) to the one
    /// reports join now: the open one, or the next after the last resolved
    /// one. With `seq` (a report's), stops early at an occurrence that
    /// already recorded it. Serves reports and [`Self::current_occurrence`]
    /// alike.
    ///
    /// The walk starts at the key's hint (the last occurrence this process
    /// knows, see `projector::Hint`) when it has one and the report is newer
    /// than every report on the occurrences before it, which therefore
    /// cannot hold it; otherwise at occurrence 1. Occurrences evicted from
    /// memory are read from the log by [`Self::load`].
    async fn walk_key(
        &self,
        template: &str,
        key: &str,
        seq: Option<u64>,
    ) -> Result<KeyWalk, StoreError> {
        let first = occurrence_id(template, key, 1);
        let hint = self
            .projection
            .occurrence_hint(first)
            .filter(|h| seq.is_none_or(|s| s > h.before));
        let (mut n, mut before) = hint.map_or((1, 0), |h| (h.n, h.before));
        // The last occurrence passed (resolved) and the hint it makes.
        let mut last: Option<(Handoff, Hint)> = None;
        loop {
            let id = occurrence_id(template, key, n);
            let state = self.load(id).await?;
            let incident = state.as_ref().and_then(Handoff::as_incident);
            if let (Some(i), Some(seq)) = (incident, seq) {
                if self.recorded(i, seq).await? {
                    return Ok(KeyWalk {
                        first,
                        n,
                        id,
                        state,
                        previous: None,
                        before,
                        last: None,
                        recorded: true,
                    });
                }
            }
            if let Some(i) = incident.filter(|i| i.resolved.is_some()) {
                let highest = i.highest_report();
                let hint = Hint { n, id, before };
                last = state.map(|h| (h, hint));
                before = before.max(highest);
                n += 1;
                continue;
            }
            let hint = match (&state, &last) {
                (Some(_), _) => Some(Hint { n, id, before }),
                (None, Some((_, h))) => Some(*h),
                (None, None) => None,
            };
            if let Some(h) = hint {
                self.projection.note_occurrence(first, h);
            }
            let previous = (n > 1).then(|| occurrence_id(template, key, n - 1));
            return Ok(KeyWalk {
                first,
                n,
                id,
                state,
                previous,
                before,
                last: last.map(|(h, _)| h),
                recorded: false,
            });
        }
    }

    /// Whether the report at `seq` is recorded on `i`: from the state when
    /// it can tell, else from the handoff's log.
    async fn recorded(&self, i: &Incident, seq: u64) -> Result<bool, StoreError> {
        match i.has_report(seq) {
            Seen::Yes => Ok(true),
            Seen::No => Ok(false),
            Seen::Unsure => {
                let wanted = format!("report:{seq}");
                let commits = self.store.read_after(i.id, 0).await?;
                Ok(commits.iter().flat_map(|(_, c)| &c.events).any(|e| {
                    matches!(&e.data,
                        EventData::Opened { report: Some(r), .. }
                        | EventData::ReportedAgain { report: Some(r) } if *r == wanted)
                }))
            }
        }
    }

    /// The handoff that reports with `key` under `template` join now (the
    /// last occurrence, open or resolved), or `None` if no report with that
    /// key was recorded.
    pub async fn current_occurrence(
        &self,
        template: &str,
        key: &str,
    ) -> Result<Option<Handoff>, StoreError> {
        let walk = self.walk_key(template, key, None).await?;
        Ok(walk.state.or(walk.last))
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
            let mut new = match decide(state.as_ref(), cmd, now, &self.policy) {
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
            // Who each notice reaches is decided now and stored with it:
            // `decide` stays pure, the roster is read once per attempt.
            self.roster.read(|dir| {
                for e in &mut new {
                    if let Some(notice) = e.data.notice_mut() {
                        dir.resolve_notice(notice, &self.policy, now);
                    }
                }
            });
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
                    tracing::debug!(handoff_id = %id, seq = a.seq, events = ?kinds, "events stored");
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

    /// The handoff's state: the projection's, or folded from its subject
    /// in the log when the projection does not hold it (not seen yet, or
    /// evicted after its retention). A read leaves nothing in memory: an
    /// evicted handoff answers exactly as before, and stays evicted.
    pub async fn load(&self, id: Uuid) -> Result<Option<Handoff>, StoreError> {
        if let Some(h) = self.projection.get(id) {
            return Ok(Some(h));
        }
        let mut state = None;
        for (_, commit) in self.store.read_after(id, 0).await? {
            for e in &commit.events {
                apply(&mut state, e);
            }
        }
        Ok(state)
    }
}

/// Where a walk over a key's occurrences ended ([`Engine::walk_key`]).
struct KeyWalk {
    /// The key's first occurrence id (its hint's key).
    first: Uuid,
    /// The occurrence reports join now, or the next to open.
    n: u32,
    id: Uuid,
    /// Its state; `None` when it is still to open.
    state: Option<Handoff>,
    /// The resolved occurrence before it, which a new one recurs.
    previous: Option<Uuid>,
    /// The highest report sequence on the occurrences before it.
    before: u64,
    /// The last resolved occurrence passed, if any.
    last: Option<Handoff>,
    /// `state` already recorded the report walked for.
    recorded: bool,
}

/// Where a report sits in `BATON_REPORTS`.
#[derive(Debug, Clone, Copy)]
pub struct ReportSource {
    /// Its stream sequence.
    pub seq: u64,
    /// The stream's receive time, Unix milliseconds.
    pub published_ms: u64,
}

/// The retry loop against a real `nats-server`: a second [`EventStore`] on
/// the same stream plays the other daemon, writing behind this engine's
/// projection exactly where a lagging projector would leave it.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{free_port, NatsServer};
    use crate::domain::{Severity, Status};
    use crate::metrics::Metrics;
    use crate::store::{self, Names, StreamSettings};
    use crate::testkit::{policy, report};

    struct Daemons {
        /// This daemon's engine, over `projection`.
        engine: Engine,
        projection: Arc<Projection>,
        /// The other daemon's handle on the same stream.
        other: EventStore,
        _timer: crate::sla::TimerQueue,
        _server: NatsServer,
        _dir: tempfile::TempDir,
    }

    async fn daemons() -> Daemons {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = (0..5)
            .find_map(|_| NatsServer::start(dir.path(), free_port()).ok())
            .expect("nats-server starts");
        let client = async_nats::connect(&server.url).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        let names = Names::new("baton");
        let settings = StreamSettings {
            replicas: 1,
            max_report_bytes: 64 * 1024,
            pages_duplicate_window: std::time::Duration::from_secs(60),
            pages_max_age: std::time::Duration::ZERO,
        };
        store::ensure_streams(&js, &names, &settings)
            .await
            .expect("streams");
        let open = |js| EventStore::open(js, &names, 16, None);
        let (mine, other) = (open(js.clone()).await.unwrap(), open(js).await.unwrap());
        let policy = Arc::new(policy());
        let (timer, queue) = crate::sla::channel();
        let projection = Arc::new(Projection::new(
            policy.clone(),
            timer,
            Arc::new(Metrics::new()),
        ));
        Daemons {
            engine: Engine::new(mine, projection.clone(), policy),
            projection,
            other,
            _timer: queue,
            _server: server,
            _dir: dir,
        }
    }

    fn open() -> Command {
        Command::Incident(IncidentCommand::Open {
            template: "agent_failure".into(),
            report: report(Severity::P1),
            warnings: vec![],
            source: None,
        })
    }

    fn ack(by: &str) -> Command {
        Command::Incident(IncidentCommand::Acknowledge { by: by.into() })
    }

    /// The commit `cmd` produces on `state`, as another daemon would store it.
    fn commit(id: Uuid, state: Option<&Handoff>, cmd: &Command) -> Commit {
        let now = Utc::now();
        let events = decide(state, cmd, now, &policy()).expect("decided");
        Commit {
            events: events
                .into_iter()
                .map(|e| e.seal(Uuid::now_v7(), id, now))
                .collect(),
        }
    }

    fn acknowledged_by(h: &Handoff) -> Option<&str> {
        h.as_incident()?
            .acknowledged
            .as_ref()
            .map(|s| s.by.as_str())
    }

    /// Another daemon opened the handoff and this projector has not seen
    /// it: `NotFound` makes the engine read the stream once, then decide.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn not_found_refreshes_from_the_stream_once_before_refusing() {
        let d = daemons().await;
        let id = Uuid::now_v7();
        let opened = commit(id, None, &open());
        d.other
            .append(id, 0, &format!("{id}:0"), &opened)
            .await
            .unwrap();
        assert!(d.projection.get(id).is_none(), "precondition: not seen");

        let outcome = d.engine.execute(id, ack("alice")).await.expect("acked");
        assert_eq!(outcome.seq, Some(2));
        assert_eq!(outcome.events[0].kind(), "acknowledged");
        let h = outcome.handoff.expect("state");
        assert_eq!(acknowledged_by(&h), Some("alice"));

        // Nothing stored anywhere: refused after one refresh, and the empty
        // slot the attempt made is gone again.
        let nobody = Uuid::now_v7();
        let err = d.engine.execute(nobody, ack("alice")).await.unwrap_err();
        assert!(
            matches!(err, EngineError::Domain(DomainError::NotFound)),
            "{err}"
        );
        assert_eq!(d.projection.len(), 1, "only the real handoff is held");
    }

    /// The other daemon stored its decision under the msg-id this engine
    /// uses next (`<id>:<seq>`): the append is answered as a duplicate, the
    /// engine reloads and re-decides on what was really stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_duplicate_append_reloads_and_decides_again_on_the_stored_state() {
        let d = daemons().await;
        let id = Uuid::now_v7();
        let opened = d.engine.execute(id, open()).await.unwrap();
        assert_eq!(opened.seq, Some(1));
        let theirs = commit(id, opened.handoff.as_ref(), &ack("alice"));
        let msg_id = format!("{id}:1");
        d.other.append(id, 1, &msg_id, &theirs).await.unwrap();
        // Precondition: the server refuses the same msg-id again. 2.9
        // answers it as a duplicate even though the expected sequence is
        // stale by now; newer servers (2.15) check the sequence first and
        // answer a conflict. The engine reloads on either.
        match d.other.append(id, 1, &msg_id, &theirs).await {
            Ok(again) => assert!(again.duplicate, "the msg-id is deduplicated first"),
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("{e}"),
        }

        let err = d.engine.execute(id, ack("bob")).await.unwrap_err();
        assert!(
            matches!(&err, EngineError::Domain(DomainError::AlreadyAcknowledged { by, .. }) if by == "alice"),
            "{err}"
        );
        let h = d.projection.get(id).unwrap();
        assert_eq!(acknowledged_by(&h), Some("alice"));
        assert_eq!(
            d.other.read_after(id, 0).await.unwrap().len(),
            2,
            "bob's acknowledgement was never stored"
        );
    }

    /// The other daemon's commit took the sequence: the append conflicts,
    /// the engine reloads, and a command that is still due is stored after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_conflicting_append_reloads_and_stores_after_the_winner() {
        let d = daemons().await;
        let id = Uuid::now_v7();
        let opened = d.engine.execute(id, open()).await.unwrap();
        let theirs = commit(id, opened.handoff.as_ref(), &ack("alice"));
        d.other.append(id, 1, "elsewhere", &theirs).await.unwrap();

        let resolve = Command::Incident(IncidentCommand::Resolve {
            by: "bob".into(),
            note: None,
        });
        let outcome = d.engine.execute(id, resolve).await.expect("resolved");
        assert_eq!(outcome.seq, Some(3), "stored after the winner's commit");
        let h = outcome.handoff.unwrap();
        assert_eq!(acknowledged_by(&h), Some("alice"));
        assert_eq!(h.as_incident().unwrap().status(), Status::Resolved);
    }

    /// A key that flaps: each report's walk starts at the key's hint (the
    /// last occurrence and the highest report before it) instead of at
    /// occurrence 1, and an old report redelivered after several
    /// recurrences is still found on the occurrence that recorded it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flapping_key_walks_from_its_hint_and_still_recognises_an_old_report() {
        let d = daemons().await;
        let mut r = report(Severity::P1);
        r.dedup_key = Some("flap".into());
        let template = "agent_failure";
        let first = occurrence_id(template, "flap", 1);
        let at = |seq| ReportSource {
            seq,
            published_ms: 1,
        };
        let resolve = Command::Incident(IncidentCommand::Resolve {
            by: "al".into(),
            note: None,
        });
        for (seq, n) in [(10, 1), (20, 2), (30, 3)] {
            let done = d
                .engine
                .report(template, r.clone(), vec![], at(seq))
                .await
                .unwrap();
            let id = done.outcome.handoff_id;
            assert_eq!(id, occurrence_id(template, "flap", n));
            assert!(done.opened);
            let hint = d.projection.occurrence_hint(first).expect("hinted");
            assert_eq!((hint.n, hint.id), (n, id));
            assert_eq!(hint.before, if n == 1 { 0 } else { seq - 10 });
            if n < 3 {
                d.engine.execute(id, resolve.clone()).await.unwrap();
            }
        }
        // Report 20 again (a redelivery): recorded on occurrence 2, which
        // the hint's walk would skip, so the walk starts at 1.
        let again = d
            .engine
            .report(template, r.clone(), vec![], at(20))
            .await
            .unwrap();
        assert_eq!(again.outcome.handoff_id, occurrence_id(template, "flap", 2));
        assert!(again.outcome.events.is_empty(), "nothing stored again");
        // A new report joins occurrence 3; the current one is 3.
        let joined = d.engine.report(template, r, vec![], at(40)).await.unwrap();
        assert_eq!(
            joined.outcome.handoff_id,
            occurrence_id(template, "flap", 3)
        );
        assert_eq!(joined.outcome.events[0].kind(), "reported_again");
        let current = d.engine.current_occurrence(template, "flap").await.unwrap();
        assert_eq!(
            current.map(|h| h.id()),
            Some(occurrence_id(template, "flap", 3))
        );
    }

    /// A msg-id the stream already holds under another subject makes every
    /// append a duplicate that no reload can explain: the loop gives up
    /// after `MAX_ATTEMPTS` instead of spinning, and stores nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_that_never_land_give_up_as_contended_after_max_attempts() {
        let d = daemons().await;
        let (id, elsewhere) = (Uuid::now_v7(), Uuid::now_v7());
        let squatter = commit(elsewhere, None, &open());
        d.other
            .append(elsewhere, 0, &format!("{id}:0"), &squatter)
            .await
            .unwrap();

        let err = d.engine.execute(id, open()).await.unwrap_err();
        assert!(
            matches!(err, EngineError::Contended(n) if n == MAX_ATTEMPTS),
            "{err}"
        );
        assert!(d.other.read_after(id, 0).await.unwrap().is_empty());
        assert!(d.projection.get(id).is_none());
        assert_eq!(d.projection.len(), 0, "the empty slot is forgotten");
    }
}
