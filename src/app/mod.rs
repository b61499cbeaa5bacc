//! The application: the one write path and the reads, free of any
//! transport.
//!
//! [`Handoffs`] is the service every transport calls: the NATS
//! request/reply loop (`api::nats`, which also carries the CLI), the HTTP
//! handlers, the ingest consumer and the jobs. Transports only translate:
//! bytes into the typed requests of [`requests`], [`AppError`] into a reply
//! code or an HTTP status, and the views of [`views`] into bytes. So NATS
//! and HTTP give the same answer to the same question.
//!
//! - [`engine`] — load state, `decide`, append with optimistic
//!   concurrency, retry.
//! - [`requests`] — one typed request per verb (also the OpenAPI schema),
//!   decoded through [`decode`] so every refusal keeps its code.
//! - [`error`] — [`AppError`]: each variant's code and HTTP status.
//! - [`views`] — what is answered: a handoff, a page, a command's reply.
//! - [`list`] — the list's filters and keyset paging.
//! - [`reports`] — reports in: validation, opening, rejection records.
//! - [`rejection`] — the rejection record, bounded to fit one message.
//! - [`oncall`] — who is on call: the shared roster and the on-call
//!   service (overrides, participant changes, `oncall` questions).

// The API's own layer: every public item says what it is.
#![warn(missing_docs)]

mod decode;
pub mod engine;
pub mod error;
pub mod list;
pub mod oncall;
pub mod rejection;
pub mod reports;
pub mod requests;
pub mod views;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use uuid::Uuid;

pub use error::AppError;

use crate::domain::{Command, DomainError, ParseLimits, Policy};
use crate::identity::{Action, Actor, Decision, Facts, Identity};
use crate::metrics::Metrics;
use crate::projector::{off_runtime, Projection, Select};
use crate::stats::Stats;
use crate::store::Names;
use engine::Engine;
use list::{Filter, ListQuery};
use requests::{DigestBody, StartBody, StatsQuery};
use views::{CommandReply, Digests, HandoffDigest, HandoffPage, HandoffView, Timeline};

/// The handoff service: commands, reads and reports, over one engine.
/// A cheap handle (cloned per component); every clone shares the engine.
#[derive(Clone)]
pub struct Handoffs {
    engine: Arc<Engine>,
    limits: ParseLimits,
    metrics: Arc<Metrics>,
    /// Who may do what; without it every actor may do anything (tests).
    identity: Option<Identity>,
}

/// With a person credential, the command's `by` is that person: filled
/// in when the body leaves it out, refused (`invalid_value`, 422) when it
/// names someone else. A shared token keeps the body's `by`, unproven.
pub fn bind_by(
    actor: &Actor,
    body: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), AppError> {
    bind_field(actor, body, "by")
}

/// [`bind_by`] for a body whose actor field has another name (an
/// override's `created_by`: its `by` is who goes on call).
pub fn bind_field(
    actor: &Actor,
    body: &mut serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<(), AppError> {
    let Some(person) = actor.person() else {
        return Ok(());
    };
    match body.get(field) {
        None | Some(serde_json::Value::Null) => {
            body.insert(field.into(), person.into());
            Ok(())
        }
        Some(serde_json::Value::String(by)) if by.trim() == person => Ok(()),
        Some(_) => Err(AppError::invalid(
            field,
            format!("this credential acts as {person:?}: leave `{field}` out or send {person:?}"),
        )),
    }
}

impl Handoffs {
    /// The service over `engine`, with `[limits]`' report and field sizes
    /// and the registry that counts rejected reports.
    pub fn new(engine: Arc<Engine>, limits: ParseLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            engine,
            limits,
            metrics,
            identity: None,
        }
    }

    /// The same service, deciding access with `identity`'s rules
    /// (`[authz]`, `members_only` templates) in [`Self::command_as`],
    /// [`Self::start_as`] and [`Self::authorize`].
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The rules' configuration: severities, routes, templates.
    pub fn policy(&self) -> &Policy {
        self.engine.policy()
    }

    /// Who is on call: questions, overrides, participant changes.
    pub fn oncall(&self) -> oncall::Oncall {
        oncall::Oncall::new(
            self.engine.roster().clone(),
            crate::store::OncallLog::new(self.engine.store().context().clone(), self.names()),
        )
    }

    /// The subjects and streams of this deployment.
    pub fn names(&self) -> &Names {
        self.engine.store().names()
    }

    /// Report and field size limits.
    pub fn limits(&self) -> ParseLimits {
        self.limits
    }

    /// Runs one command on one handoff.
    pub async fn execute(&self, id: Uuid, cmd: Command) -> Result<CommandReply, AppError> {
        let outcome = self.engine.execute(id, cmd).await?;
        Ok(CommandReply::new(outcome, self.policy()))
    }

    /// Runs the command a verb's body asks for on one handoff (`ack`,
    /// `override`, `enrich`, `resolve` and the team-handoff verbs).
    pub async fn command(
        &self,
        verb: &str,
        id: Uuid,
        body: serde_json::Map<String, serde_json::Value>,
    ) -> Result<CommandReply, AppError> {
        match requests::command(verb, body, self.limits.max_field_bytes)? {
            Some(cmd) => self.execute(id, cmd).await,
            None => Err(AppError::UnknownCommand {
                verb: verb.into(),
                known: requests::VERBS.join(", "),
            }),
        }
    }

    /// Decides whether `actor` may take `action` with `facts`
    /// ([`crate::identity::authz::authorize`]); a refusal is logged and is
    /// `forbidden` (403), before anything is stored.
    pub fn authorize(&self, actor: &Actor, action: Action, facts: &Facts) -> Result<(), AppError> {
        let Some(identity) = &self.identity else {
            return Ok(());
        };
        match crate::identity::authz::authorize(actor, action, facts, identity.rules()) {
            Decision::Allow => Ok(()),
            Decision::Forbidden { needed } => {
                let action = action.as_str().to_string();
                tracing::warn!(
                    person = actor.person().unwrap_or("(shared token)"),
                    action,
                    needed,
                    "action forbidden"
                );
                Err(AppError::Forbidden { action, needed })
            }
        }
    }

    /// Authorizes an on-call change (`oncall_override`, `oncall_cancel`,
    /// `oncall_participants`) for `actor` and binds the body's actor
    /// field (`created_by` of an override, `by` of the others) to a
    /// person credential's person.
    pub fn authorize_oncall(
        &self,
        actor: &Actor,
        verb: &str,
        body: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), AppError> {
        self.authorize(
            actor,
            crate::identity::authz::Action::OncallChange,
            &Default::default(),
        )?;
        let field = if verb == "oncall_override" {
            "created_by"
        } else {
            "by"
        };
        bind_field(actor, body, field)
    }

    /// [`Self::command`] for `actor`: authorized first (loading the
    /// handoff's facts when a `members_only` template may apply), then, for
    /// a person credential, `by` is that person ([`bind_by`]).
    pub async fn command_as(
        &self,
        actor: &Actor,
        verb: &str,
        id: Uuid,
        mut body: serde_json::Map<String, serde_json::Value>,
    ) -> Result<CommandReply, AppError> {
        if let Some(action) = Action::of_verb(verb) {
            let facts = self.facts(action, id).await?;
            self.authorize(actor, action, &facts)?;
            bind_by(actor, &mut body)?;
        }
        self.command(verb, id, body).await
    }

    /// [`Self::start`] for `actor`, from the body's JSON object.
    pub async fn start_as(
        &self,
        actor: &Actor,
        mut body: serde_json::Map<String, serde_json::Value>,
    ) -> Result<CommandReply, AppError> {
        self.authorize(actor, Action::Start, &Facts::default())?;
        bind_by(actor, &mut body)?;
        self.start(requests::body("start", body)?).await
    }

    /// The handoff's facts the rule needs: the receiving team of a team
    /// handoff whose template is `members_only`.
    async fn facts(&self, action: Action, id: Uuid) -> Result<Facts, AppError> {
        let Some(identity) = &self.identity else {
            return Ok(Facts::default());
        };
        if !action.is_members_only_kind() || !identity.any_members_only() {
            return Ok(Facts::default());
        }
        let handoff = self.engine.load(id).await?;
        Ok(Facts {
            members_only_team: handoff
                .as_ref()
                .and_then(|h| h.as_team())
                .filter(|t| identity.members_only(&t.template.name))
                .map(|t| t.template.to_team.clone()),
        })
    }

    /// The open handoffs assigned to `person`: incidents whose packet
    /// names them primary or backup owner, or whose pages reached them
    /// (the person stored in a page or escalation), newest first. Walks
    /// the projection.
    pub async fn owned_by(&self, person: String) -> Vec<views::OwnedHandoff> {
        self.read(move |projection, _| {
            let mut out = Vec::new();
            projection.visit(
                |_| true,
                |h, _| {
                    let Some(i) = h.as_incident().filter(|_| !h.is_closed()) else {
                        return;
                    };
                    let owner = i.packet.owner.as_ref();
                    let role = if owner.and_then(|o| o.primary.as_deref()) == Some(person.as_str())
                    {
                        "primary"
                    } else if owner.and_then(|o| o.backup.as_deref()) == Some(person.as_str()) {
                        "backup"
                    } else if i.paged_people.contains(&person) {
                        "paged"
                    } else {
                        return;
                    };
                    out.push(views::OwnedHandoff {
                        id: i.id,
                        role: role.into(),
                        severity: i.severity.to_string(),
                        status: h.status_str().into(),
                        team: i.team.clone(),
                        opened_at: i.opened_at,
                    });
                },
            );
            out.sort_by_key(|h| std::cmp::Reverse(h.opened_at));
            out
        })
        .await
    }

    /// Starts a team handoff from a template (or joins it, with the same
    /// `dedup_key`).
    pub async fn start(&self, body: StartBody) -> Result<CommandReply, AppError> {
        let (id, cmd) = body.into_command(self.policy(), self.limits.max_field_bytes)?;
        self.execute(id, cmd).await
    }

    /// One handoff's current state, read from the stream if this process
    /// has not seen it yet.
    pub async fn get(&self, id: Uuid) -> Result<HandoffView, AppError> {
        match self.engine.load(id).await? {
            Some(h) => Ok(HandoffView::new(&h, self.policy())),
            None => Err(DomainError::NotFound.into()),
        }
    }

    /// A handoff's stored events, straight from the stream, each with the
    /// sequence of its commit.
    pub async fn timeline(&self, id: Uuid) -> Result<Timeline, AppError> {
        let commits = self.engine.store().read_after(id, 0).await?;
        if commits.is_empty() {
            return Err(DomainError::NotFound.into());
        }
        let events = commits
            .into_iter()
            .flat_map(|(seq, c)| c.events.into_iter().map(move |e| (seq, e)))
            .map(|(seq, e)| {
                let mut v = serde_json::to_value(&e).expect("events serialize");
                if let serde_json::Value::Object(m) = &mut v {
                    m.insert("seq".into(), seq.into());
                }
                v
            })
            .collect();
        Ok(Timeline {
            handoff_id: id,
            events,
        })
    }

    /// A handoff's stored events, in order (the delivery worker reads what
    /// it already recorded about a page). Empty for a handoff with none.
    pub async fn events(&self, id: Uuid) -> Result<Vec<crate::domain::Event>, AppError> {
        let commits = self.engine.store().read_after(id, 0).await?;
        Ok(commits.into_iter().flat_map(|(_, c)| c.events).collect())
    }

    /// The stream sequence the projection has applied up to: it moves
    /// whenever any handoff changes (the console's live nudge polls it).
    pub fn applied_seq(&self) -> u64 {
        self.engine.projection().applied_seq.load(Ordering::Acquire)
    }

    /// Runs a read over the projection on a blocking thread: the list,
    /// the stats and the jobs walk the projection's index (work bounded by
    /// the page or the window, review R4), never the runtime's threads.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Projection, &Policy) -> T + Send + 'static,
    ) -> T {
        let engine = self.engine.clone();
        off_runtime(move || f(engine.projection(), engine.policy())).await
    }

    /// One page of the list, newest first, read from the projection's index.
    pub async fn list(&self, query: ListQuery) -> Result<HandoffPage, AppError> {
        let filter = Filter::parse(query)?;
        Ok(self
            .read(move |projection, policy| list::page(projection, &filter, policy))
            .await)
    }

    /// Incident and team-handoff figures over the handoffs opened in the
    /// query's window (default 30 days); only that window is read.
    pub async fn stats(&self, query: &StatsQuery) -> Result<Stats, AppError> {
        let days = query.days()?;
        let now = chrono::Utc::now();
        Ok(self
            .read(move |projection, policy| {
                let since = crate::stats::window_start(now, days);
                let window = projection.opened_in(&Select::all(), Some(since), None);
                let mut stats = crate::stats::compute(&window, policy, now, days);
                // Handoffs opened in the window but closed before the
                // retention's start are no longer held: say so.
                stats.closed_evicted_before =
                    evicted_before(projection, now).filter(|e| *e > since);
                stats
            })
            .await)
    }

    /// The live projection's state digests (see [`Digests`]).
    pub fn digest(&self, body: &DigestBody) -> Digests {
        use crate::projector::digest::{bucket_digest, bucket_of, digest};
        let projection = self.engine.projection();
        // Read before the entries: an entry may be newer, never older.
        let applied_seq = projection.applied_seq.load(Ordering::Acquire);
        match body.bucket {
            None => {
                let mut buckets: Vec<Vec<(Uuid, String)>> = vec![Vec::new(); 256];
                let mut handoffs = 0usize;
                projection.visit(
                    |_| true,
                    |h, seq| {
                        handoffs += 1;
                        buckets[bucket_of(&h.id()) as usize].push((h.id(), digest(h, seq)));
                    },
                );
                let buckets = buckets
                    .iter()
                    .map(|b| bucket_digest(b.iter().map(|(i, d)| (i, d.as_str()))))
                    .collect();
                let evicted_before = evicted_before(projection, chrono::Utc::now());
                Digests::Buckets {
                    applied_seq,
                    handoffs,
                    buckets,
                    evicted_before,
                }
            }
            Some(b) => {
                let mut digests = std::collections::BTreeMap::new();
                projection.visit(
                    |id| bucket_of(id) == b,
                    |h, seq| {
                        let d = HandoffDigest {
                            seq,
                            digest: digest(h, seq),
                        };
                        digests.insert(h.id().to_string(), d);
                    },
                );
                Digests::Bucket {
                    applied_seq,
                    digests,
                }
            }
        }
    }
}

/// Closed handoffs before this moment may have left the projection
/// (`limits.closed_retention`); `None` when nothing is evicted.
fn evicted_before(
    projection: &crate::projector::Projection,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    projection
        .retention()
        .and_then(|r| chrono::TimeDelta::from_std(r).ok())
        .and_then(|r| now.checked_sub_signed(r))
}
