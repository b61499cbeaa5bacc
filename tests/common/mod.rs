//! Test harness: a private `nats-server -js` per test (free port, temp store,
//! killed and removed on drop), an in-process daemon, and condition waits.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use baton::config::Config;
use baton::dev::{free_port, NatsServer};
use baton::domain::{Commit, Event};
use baton::pages::Page;
use baton::server::{self, Running};
use baton::store::{EventStore, Names};
use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A private JetStream server.
pub struct Nats {
    pub server: NatsServer,
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl Nats {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // A port can be taken between probing and binding; try a few.
        let mut last = None;
        for _ in 0..5 {
            match NatsServer::start(dir.path(), free_port()) {
                Ok(server) => {
                    let url = server.url.clone();
                    return Nats { server, dir, url };
                }
                Err(e) => last = Some(e),
            }
        }
        panic!("cannot start nats-server: {}", last.unwrap());
    }

    pub async fn client(&self) -> (async_nats::Client, jetstream::Context) {
        let c = async_nats::connect(&self.url).await.expect("connect");
        let js = jetstream::new(c.clone());
        (c, js)
    }
}

/// Millisecond deadlines so tests never wait minutes.
pub const TEST_CONFIG: &str = r#"
[http]
enabled = false

[jobs]
enabled = false   # tests that need the scheduler turn it on

[severity.P1]
max_hold = "400ms"
first_response = "700ms"
escalation = [ { routes = ["oncall", "incident_captain"], delay = "400ms", repeat = 1 } ]

[severity.P2]
first_response = "20s"
escalation = [ { routes = ["owner", "platform_support"], delay = "20s" } ]

[severity.P3]
first_response = "20s"

[[ownership]]
workflow = "billing-*"
team = "payments"
primary = "alice"
backup = "bob"

[[runbook]]
workflow = "billing-*"
rollback_command = "billing-sync rollback --to last-good"
tested = true
"#;

pub fn config(url: &str) -> Config {
    let mut cfg = Config::parse(TEST_CONFIG).expect("test config parses");
    cfg.nats.url = url.to_string();
    cfg.validate().expect("test config is valid");
    cfg
}

/// An in-process daemon.
pub struct Daemon {
    pub running: Option<Running>,
    pub token: CancellationToken,
}

impl Daemon {
    pub async fn start(cfg: Config) -> Self {
        let token = CancellationToken::new();
        let running = server::start(cfg, token.clone())
            .await
            .expect("daemon starts");
        Daemon {
            running: Some(running),
            token,
        }
    }

    pub fn shared(&self) -> &baton::server::Shared {
        &self.running.as_ref().unwrap().shared
    }

    /// Graceful shutdown; returns the daemon's result.
    pub async fn stop(mut self) -> Result<(), baton::server::ServeError> {
        self.token.cancel();
        self.running.take().unwrap().wait().await
    }

    /// Aborts every task at once, as a crash would.
    pub fn crash(mut self) {
        self.running.take().unwrap().abort();
    }
}

/// Polls `f` until it yields a value (20 s at most).
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Publishes a report to the report stream and returns its sequence.
pub async fn publish_report(js: &jetstream::Context, template: &str, payload: &[u8]) -> u64 {
    js.publish(
        Names::new("baton").report(template),
        payload.to_vec().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored")
    .sequence
}

/// Every message of a stream, in order, as JSON.
pub async fn stream_json(js: &jetstream::Context, stream: &str) -> Vec<(String, Value)> {
    let mut s = js.get_stream(stream).await.expect("stream exists");
    let last = s.info().await.expect("info").state.last_sequence;
    let mut out = Vec::new();
    if last == 0 {
        return out;
    }
    let consumer = s
        .create_consumer(OrderedConfig::default())
        .await
        .expect("consumer");
    let mut msgs = consumer.messages().await.expect("messages");
    while let Some(m) = msgs.next().await {
        let m = m.expect("message");
        let seq = m.info().unwrap().stream_sequence;
        out.push((
            m.subject.to_string(),
            serde_json::from_slice(&m.payload).expect("json"),
        ));
        if seq >= last {
            break;
        }
    }
    out
}

/// Every stored page.
pub async fn pages(js: &jetstream::Context) -> Vec<Page> {
    stream_json(js, "BATON_PAGES")
        .await
        .into_iter()
        .map(|(_, v)| serde_json::from_value(v).expect("page decodes"))
        .collect()
}

/// Pages of one handoff.
pub async fn pages_of(js: &jetstream::Context, id: Uuid) -> Vec<Page> {
    pages(js)
        .await
        .into_iter()
        .filter(|p| p.handoff_id == id)
        .collect()
}

/// Every stored event of one handoff.
pub async fn events_of(js: &jetstream::Context, id: Uuid) -> Vec<Event> {
    let cfg = Config::default();
    let names = Names::new(&cfg.nats.prefix);
    let store = EventStore::open(js.clone(), &names, cfg.limits.max_in_flight_appends, None)
        .await
        .expect("event store");
    store
        .read_after(id, 0)
        .await
        .expect("read")
        .into_iter()
        .flat_map(|(_, c): (u64, Commit)| c.events)
        .collect()
}

pub fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind()).collect()
}

/// A complete P1 report for `run`.
pub fn p1(run: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "severity": "P1",
        "run_id": run,
        "workflow_id": "billing-sync",
        "objective": "Sync invoices to the ledger",
        "failure_class": "dependency_timeout",
        "last_successful_step": "fetch_invoices",
        "failing_step": "post_ledger",
        "error_summary": "ledger API timed out",
        "blast_radius": {"users": 1200, "jobs": 3},
        "recommended_action": "fail over to the standby ledger",
        "rollback_command": "billing-sync rollback --to last-good",
        "owner": {"primary": "alice", "backup": "bob"},
        "ttl_seconds": 3600,
        "team": "payments"
    }))
    .unwrap()
}

/// The handoff id Baton derives for `p1(run)`.
pub fn p1_id(run: &str) -> Uuid {
    let parsed = baton::domain::parse_report(
        &p1(run),
        baton::domain::ParseLimits {
            max_report_bytes: 65536,
            max_field_bytes: 4096,
        },
    )
    .unwrap();
    baton::domain::handoff_id_for("agent_failure", &parsed.report).unwrap()
}

/// Sends a command and returns the JSON reply.
pub async fn command(client: &async_nats::Client, verb: &str, body: Value) -> Value {
    let reply = client
        .request(
            format!("baton.cmd.{verb}"),
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .expect("reply");
    serde_json::from_slice(&reply.payload).expect("json reply")
}
