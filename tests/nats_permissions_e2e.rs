//! The shipped NATS users (`deploy/nats/accounts.conf`) against a real
//! nats-server: every role can do what it needs and is refused the rest.
//!
//! The server runs `accounts.conf` verbatim, after the password variables it
//! reads from the environment are defined in front of it (a test must not
//! change its own process's environment). Refusals are seen as the server
//! reports them to the client: a "Permissions Violation" error event naming
//! the subject; nats-server offers no other signal for a refused publish.

mod common;

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use async_nats::{ConnectOptions, Event};
use baton::dev::{free_port, NatsServer};
use common::*;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

const ROLES: [(&str, &str); 4] = [
    ("baton", "BATON_NATS_PASSWORD"),
    ("runner", "BATON_RUNNER_PASSWORD"),
    ("pager", "BATON_PAGER_PASSWORD"),
    ("operator", "BATON_OPERATOR_PASSWORD"),
];

fn password(user: &str) -> String {
    format!("{user}-password-for-tests")
}

/// A nats-server running the shipped users.
struct Secured {
    server: NatsServer,
    dir: tempfile::TempDir,
}

impl Secured {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nats/accounts.conf");
        let accounts = std::fs::read_to_string(&shipped).expect("deploy/nats/accounts.conf");
        let mut conf = String::new();
        for (user, var) in ROLES {
            conf.push_str(&format!("{var}: \"{}\"\n", password(user)));
        }
        conf.push_str(&accounts);
        let path = dir.path().join("nats.conf");
        std::fs::write(&path, conf).expect("write nats.conf");
        let extra = ["-c".to_string(), path.display().to_string()];
        let mut last = None;
        for _ in 0..5 {
            match NatsServer::start_with(dir.path(), free_port(), &extra) {
                Ok(server) => return Secured { server, dir },
                Err(e) => last = Some(e),
            }
        }
        panic!("cannot start nats-server: {}", last.unwrap());
    }

    /// A client signed in as `user`, and the errors the server reports to it.
    async fn connect(&self, user: &str) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = ConnectOptions::with_user_and_password(user.into(), password(user))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let Event::ServerError(e) = event {
                        let _ = tx.send(e.to_string());
                    }
                }
            })
            .connect(&self.server.url)
            .await
            .unwrap_or_else(|e| panic!("{user} connects: {e}"));
        (client, rx)
    }

    /// A Baton daemon signed in as the `baton` user.
    async fn daemon(&self) -> Daemon {
        Daemon::start(self.daemon_config()).await
    }

    /// The server's log lines about permission violations by `user`
    /// (2.9 writes `User "runner"`, 2.10 and later `"BATON/user:runner"`).
    fn violations_by(&self, user: &str) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("nats-server.log"))
            .expect("nats-server.log");
        let (old, new) = (format!("User \"{user}\""), format!("/user:{user}\""));
        log.lines()
            .filter(|l| l.contains("Violation") && (l.contains(&old) || l.contains(&new)))
            .map(str::to_string)
            .collect()
    }

    fn daemon_config(&self) -> baton::config::Config {
        let mut cfg = config(&self.server.url);
        cfg.nats.user = Some("baton".into());
        cfg.nats.password = Some(password("baton"));
        cfg
    }
}

/// Waits for the server to refuse `what` (`Publish to` or `Subscription
/// to`) on `subject`; other errors seen meanwhile are skipped.
async fn refused(errors: &mut mpsc::UnboundedReceiver<String>, what: &str, subject: &str) {
    let wanted = format!("permissions violation for {what} \"{subject}\"").to_lowercase();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = errors.recv().await {
            if e.to_lowercase().contains(&wanted) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "the server refuses {what} {subject}");
}

/// Publishes on `subject` and waits for the server to refuse it.
async fn publish_refused(
    client: &async_nats::Client,
    errors: &mut mpsc::UnboundedReceiver<String>,
    subject: &str,
) {
    client
        .publish(subject.to_string(), "{}".into())
        .await
        .expect("publish queued");
    client.flush().await.expect("flush");
    refused(errors, "Publish to", subject).await;
}

/// Subscribes to `subject` and waits for the server to refuse it.
async fn subscribe_refused(
    client: &async_nats::Client,
    errors: &mut mpsc::UnboundedReceiver<String>,
    subject: &str,
) {
    let _sub = client
        .subscribe(subject.to_string())
        .await
        .expect("subscribe queued");
    client.flush().await.expect("flush");
    refused(errors, "Subscription to", subject).await;
}

#[tokio::test]
async fn a_runner_reports_and_pings_and_is_refused_everything_else() {
    let nats = Secured::start();
    let daemon = nats.daemon().await;
    let (baton, _) = nats.connect("baton").await;
    let baton_js = jetstream::new(baton);
    let (runner, mut errors) = nats.connect("runner").await;
    let js = jetstream::new(runner.clone());

    // Allowed: a report and a heartbeat ping, each acknowledged by its stream.
    let seq = publish_report(&js, "agent_failure", &p1("perm-runner-1")).await;
    assert!(seq >= 1);
    js.publish("baton.heartbeat.nightly-etl", "ok".into())
        .await
        .expect("ping published")
        .await
        .expect("ping stored");

    // The report from the runner user is paged by the daemon.
    let id = p1_id("perm-runner-1");
    eventually("the runner's report is paged", || {
        let js = baton_js.clone();
        async move { (!pages_of(&js, id).await.is_empty()).then_some(()) }
    })
    .await;

    // Refused: commands, the event log, pages, the JetStream API.
    let forbidden = [
        "baton.cmd.ack".to_string(),
        "baton.job.daily-review".to_string(),
        format!("baton.events.{id}"),
        "baton.page.oncall.payments".to_string(),
        "baton.rejected.agent_failure".to_string(),
        "$JS.API.STREAM.DELETE.BATON_EVENTS".to_string(),
        "$JS.API.STREAM.PURGE.BATON_REPORTS".to_string(),
        "$JS.API.CONSUMER.CREATE.BATON_EVENTS".to_string(),
    ];
    for subject in &forbidden {
        publish_refused(&runner, &mut errors, subject).await;
    }
    subscribe_refused(&runner, &mut errors, "baton.events.>").await;
    subscribe_refused(&runner, &mut errors, "baton.page.>").await;
    subscribe_refused(&runner, &mut errors, "baton.cmd.*").await;

    // Nothing refused reached a stream: the event log still exists and holds
    // only the daemon's commits.
    let events = stream_json(&baton_js, "BATON_EVENTS").await;
    assert!(!events.is_empty());
    assert!(events.iter().all(|(_, v)| v.get("events").is_some()));

    daemon.stop().await.expect("daemon stops cleanly");
    assert_eq!(nats.violations_by("baton"), Vec::<String>::new());
    assert!(
        !nats.violations_by("runner").is_empty(),
        "the log names them"
    );
}

#[tokio::test]
async fn a_pager_reads_pages_only() {
    let nats = Secured::start();
    let daemon = nats.daemon().await;
    let (runner, _) = nats.connect("runner").await;
    let runner_js = jetstream::new(runner);
    let (pager, mut errors) = nats.connect("pager").await;
    let js = jetstream::new(pager.clone());

    // Live pages on core NATS.
    let mut live = pager.subscribe("baton.page.>").await.expect("subscribe");
    pager.flush().await.expect("flush");
    publish_report(&runner_js, "agent_failure", &p1("perm-pager-1")).await;
    let page = tokio::time::timeout(Duration::from_secs(20), live.next())
        .await
        .expect("a live page arrives")
        .expect("subscription open");
    assert!(page.subject.starts_with("baton.page."));

    // Stored pages through the pager's own durable consumer on BATON_PAGES.
    let stream = js.get_stream("BATON_PAGES").await.expect("stream info");
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("pager-perm-test".into()),
            filter_subject: "baton.page.>".into(),
            ..Default::default()
        })
        .await
        .expect("the pager creates its consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .expect("fetch");
    let stored = batch.next().await.expect("a stored page").expect("message");
    let body: serde_json::Value = serde_json::from_slice(&stored.payload).expect("page json");
    assert_eq!(body["handoff_id"], json!(p1_id("perm-pager-1")));
    stored.ack().await.expect("ack");
    stream
        .delete_consumer("pager-perm-test")
        .await
        .expect("the pager deletes its consumer");

    // Refused: reports, commands, other streams, stream management.
    for subject in [
        "baton.report.agent_failure",
        "baton.heartbeat.nightly-etl",
        "baton.cmd.ack",
        "baton.page.oncall.payments",
        "$JS.API.CONSUMER.CREATE.BATON_EVENTS",
        "$JS.API.STREAM.INFO.BATON_EVENTS",
        "$JS.API.DIRECT.GET.BATON_EVENTS",
        "$JS.API.STREAM.DELETE.BATON_PAGES",
        "$JS.API.STREAM.PURGE.BATON_PAGES",
        "$JS.API.STREAM.CREATE.EVIL",
    ] {
        publish_refused(&pager, &mut errors, subject).await;
    }
    subscribe_refused(&pager, &mut errors, "baton.events.>").await;
    subscribe_refused(&pager, &mut errors, "baton.report.>").await;

    daemon.stop().await.expect("daemon stops cleanly");
    assert_eq!(nats.violations_by("baton"), Vec::<String>::new());
}

#[tokio::test]
async fn an_operator_commands_but_cannot_write_the_log_or_drop_a_stream() {
    let nats = Secured::start();
    // With the scheduler (claims on BATON_JOBS, records on BATON_DIGESTS),
    // its schedules a year away: only the on-demand run below happens.
    let mut cfg = nats.daemon_config();
    cfg.jobs.enabled = true;
    for schedule in [
        &mut cfg.jobs.daily_review.schedule,
        &mut cfg.jobs.weekly_drill.schedule,
        &mut cfg.jobs.ownership_audit.schedule,
    ] {
        *schedule = "0 0 0 1 1 *".into();
    }
    let daemon = Daemon::start(cfg).await;
    let (runner, _) = nats.connect("runner").await;
    let runner_js = jetstream::new(runner);
    let (operator, mut errors) = nats.connect("operator").await;

    publish_report(&runner_js, "agent_failure", &p1("perm-op-1")).await;
    let id = p1_id("perm-op-1");
    // A command's reply comes back from the daemon (its user answers only
    // the requester's inbox).
    let got = eventually("the handoff is readable", || {
        let operator = operator.clone();
        async move {
            let r = command(&operator, "get", json!({"id": id})).await;
            (r["ok"] == true).then_some(r)
        }
    })
    .await;
    assert_eq!(got["handoff"]["id"], json!(id));
    // Acknowledged once it is paged (before that the ack is refused).
    eventually("the operator acknowledges it", || {
        let operator = operator.clone();
        async move {
            let r = command(&operator, "ack", json!({"id": id, "by": "alice"})).await;
            (r["ok"] == true).then_some(())
        }
    })
    .await;
    // A job on demand: the daemon claims it and stores its record.
    let reply = operator
        .request("baton.job.ownership-audit", "{}".into())
        .await
        .expect("job reply");
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
    assert_eq!(reply["ok"], true, "{reply}");

    for subject in [
        format!("baton.events.{id}"),
        "baton.page.oncall.payments".to_string(),
        // Minting a credential is the administrator's, as the daemon's user.
        "baton.credential.0123456789abcdef".to_string(),
        "baton.oncall.payments-primary".to_string(),
        "$JS.API.STREAM.DELETE.BATON_EVENTS".to_string(),
        "$JS.API.STREAM.PURGE.BATON_EVENTS".to_string(),
        "$JS.API.STREAM.UPDATE.BATON_EVENTS".to_string(),
        "$JS.API.STREAM.MSG.DELETE.BATON_EVENTS".to_string(),
    ] {
        publish_refused(&operator, &mut errors, &subject).await;
    }
    subscribe_refused(&operator, &mut errors, "baton.cmd.*").await;

    daemon.stop().await.expect("daemon stops cleanly");
    // Everything the daemon did (ingest, pages, commands, the job) it was
    // allowed to do.
    assert_eq!(nats.violations_by("baton"), Vec::<String>::new());
}

#[tokio::test]
async fn the_daemon_user_cannot_delete_a_stream() {
    let nats = Secured::start();
    let daemon = nats.daemon().await;
    let (baton, mut errors) = nats.connect("baton").await;
    publish_refused(&baton, &mut errors, "$JS.API.STREAM.DELETE.BATON_EVENTS").await;
    subscribe_refused(&baton, &mut errors, "baton.report.>").await;
    daemon.stop().await.expect("daemon stops cleanly");
}
