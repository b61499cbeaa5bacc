//! Baton: an event-sourced handoff and incident-escalation daemon on NATS JetStream.
//!
//! # Layout
//!
//! One module per stage of the data's path:
//!
//! - [`config`] — the strict, documented TOML config and its env overrides.
//! - [`ingest`] — reports in: the durable `BATON_REPORTS` consumer, validation,
//!   the rejected-report stream.
//! - [`intake`] — alerts in from other tools (Alertmanager webhook,
//!   PagerDuty Events API v2), mapped to native reports for `app`.
//! - [`domain`] — the pure core: packet, HCS, policy, events, `decide`/`apply`.
//! - [`app`] — the application service every transport calls
//!   (`app::Handoffs`): the write path (decide, append with optimistic
//!   concurrency, retry), the reads, one typed request per verb, one error
//!   enum, and the views every transport answers with.
//! - [`api`] — the NATS request/reply loop for `cmd.*` and `job.*`.
//! - [`identity`] — people, their credentials (hashed in
//!   `BATON_CREDENTIALS`) and the rule of who may do what; imports `store`
//!   and `config`, and `app`, `http`, `api` call it.
//! - [`wire`] — the stored and wire formats other processes read: events'
//!   encoding and decoder, pages, snapshots; each versioned and pinned.
//! - [`store`] — JetStream: connection, streams, append and per-handoff reads.
//! - [`projector`] — current state rebuilt from `BATON_EVENTS`.
//! - [`sla`] — the one timer task that holds every deadline.
//! - [`heartbeat`] — heartbeat monitors: the pure rules (deadline, outage id,
//!   what a ping does) and the edge that follows `BATON_HEARTBEATS`, arms a
//!   second timer and opens or resolves incidents through the engine.
//! - [`pages`] — pages out, derived from stored events, exactly once.
//! - [`delivery`] — pages to people (Slack, webhooks, e-mail), every
//!   outcome recorded in the log.
//! - [`http`] / [`metrics`] — the HTTP face and Prometheus series.
//! - [`console`] — the web console's pages as pure functions (maud) and its
//!   signed session cookie; served by `http::console`.
//! - [`stats`] — the tracker's figures (`/v1/stats`), a pure function of state.
//! - [`replay`] — read-only replay of the log: state as of any moment,
//!   timelines, the audit's invariants, exports.
//! - [`snapshot`] — the projector's state saved to JetStream so a restart
//!   replays only the tail.
//! - [`jobs`] — the operations playbook on a schedule: daily review, weekly
//!   drill, ownership audit, each run claimed once across daemons.
//! - [`teams`] — team handoffs at the edges: sender-quality stats, workflow diagrams.
//! - [`oncall`] — the follower that reads `BATON_ONCALL` (overrides,
//!   participant changes) into the roster the engine resolves targets with.
//! - [`server`] — wiring, start-up order and graceful shutdown.
//! - [`client`] / [`dev`] — the CLI's client side and the private dev nats-server.
//! - [`allocator`] — mimalloc's settings, applied first thing by the binary.
//!
//! Dependencies point down only: `domain` ← `wire` ← `store` ← `projector`
//! ← `app` ← `ingest` / `intake` / `jobs` / `http` / `api` ← `server` ← the binary.
//! `metrics`, `sla`, `stats` and `teams` sit beside that line and import only
//! `domain` (and `sla` the metrics); `pages` reads the store. `config` imports only
//! `domain`; `server` turns it into what each component takes
//! (`app::Handoffs`, `http::AppState`, `jobs::JobContext`,
//! `store::StreamSettings`). `replay` and `client` are leaves that nothing
//! in the daemon imports. One exception remains: the projector still feeds
//! the SLA timer and the metrics itself.

pub mod allocator;
pub mod api;
pub mod app;
pub mod client;
pub mod config;
pub mod console;
pub mod delivery;
pub mod dev;
pub mod domain;
pub mod heartbeat;
pub mod http;
pub mod identity;
pub mod ingest;
pub mod intake;
pub mod jobs;
pub mod metrics;
pub mod oncall;
pub mod pages;
pub mod projector;
pub mod replay;
pub mod server;
pub mod sla;
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod teams;
#[doc(hidden)]
pub mod testkit;
pub mod wire;
