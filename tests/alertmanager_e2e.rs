//! The real Alertmanager (`prometheus-alertmanager`, the Debian package)
//! with a webhook receiver pointing at a daemon on its own nats-server:
//! alerts posted to Alertmanager's API become one handoff and one page
//! each; Alertmanager's repeat sends join them and page nobody; alerts
//! resolved in Alertmanager resolve their handoffs as `alertmanager` (one
//! acknowledged by a person first); firing again, they open and page a new
//! occurrence each.
//! Skipped, saying so, only when the binary is missing (`.ci/run`
//! installs it).

mod common;
#[path = "support/http.rs"]
mod http;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use baton::config::AlertmanagerConfig;
use baton::dev::free_port;
use baton::domain::{keyed_handoff_id, occurrence_id, Severity};
use chrono::{Duration as Span, Utc};
use common::*;
use serde_json::{json, Value};
use uuid::Uuid;

const BINARY: &str = "prometheus-alertmanager";
const TOKEN: &str = "am-e2e-token-0123456789";

/// A private Alertmanager (no clustering, temp storage), killed on drop.
struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn binary() -> Option<String> {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {BINARY}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        found.or_else(|| {
            let p = format!("/usr/bin/{BINARY}");
            Path::new(&p).exists().then_some(p)
        })
    }

    async fn start(binary: &str, baton: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"
global:
  resolve_timeout: 1m
route:
  receiver: baton
  group_by: ['alertname']
  group_wait: 100ms
  group_interval: 300ms
  repeat_interval: 600ms
receivers:
  - name: baton
    webhook_configs:
      - url: http://{baton}/v1/alertmanager/prod
        send_resolved: true
        http_config:
          authorization:
            credentials: {TOKEN}
"#
        );
        let file = dir.path().join("alertmanager.yml");
        std::fs::write(&file, config).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("alertmanager starts");
        let am = Alertmanager {
            child,
            addr,
            _dir: dir,
        };
        eventually("alertmanager is ready", || async {
            let ok = tokio::net::TcpStream::connect(addr).await.is_ok()
                && http::send(addr, "GET", "/-/ready", &[], b"").await.status == 200;
            ok.then_some(())
        })
        .await;
        am
    }

    /// Posts alerts through Alertmanager's API, as Prometheus does.
    async fn post(&self, alerts: &Value) {
        let (status, body) =
            http::json(self.addr, "POST", "/api/v2/alerts", &[], Some(alerts)).await;
        assert_eq!(status, 200, "{body}");
    }

    /// The fingerprints Alertmanager gave the alerts, by `instance`.
    async fn fingerprints(&self) -> Vec<(String, String)> {
        let (_, alerts) = http::json(self.addr, "GET", "/api/v2/alerts", &[], None).await;
        let mut out: Vec<_> = alerts
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["labels"]["instance"].as_str().unwrap_or("").to_string(),
                    a["fingerprint"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// A webhook counter of Alertmanager's own `/metrics`.
    async fn webhook_counter(&self, metric: &str) -> f64 {
        let r = http::send(self.addr, "GET", "/metrics", &[], b"").await;
        r.body
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{metric}{{")) && l.contains("integration=\"webhook\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alerts(ends_at: chrono::DateTime<Utc>, starts_at: chrono::DateTime<Utc>) -> Value {
    let one = |instance: &str| {
        json!({
            "labels": {"alertname": "LedgerDown", "job": "billing-sync", "instance": instance,
                       "severity": "warning", "team": "payments"},
            "annotations": {"summary": format!("ledger API timed out on {instance}"),
                            "objective": "Sync invoices to the ledger",
                            "runbook_url": "https://runbooks.example/ledger"},
            "startsAt": starts_at.to_rfc3339(),
            "endsAt": ends_at.to_rfc3339(),
            "generatorURL": "http://prometheus.example/graph"
        })
    };
    json!([one("ledger-a:9100"), one("ledger-b:9100")])
}

async fn handoff(addr: SocketAddr, id: Uuid) -> Value {
    http::json(addr, "GET", &format!("/v1/handoffs/{id}"), &[], None)
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_from_the_real_alertmanager_page_once_each_and_resolve() {
    let Some(binary) = Alertmanager::binary() else {
        eprintln!(
            "SKIPPED: {BINARY} is not installed (apt-get install prometheus-alertmanager; .ci/run does)"
        );
        return;
    };
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    cfg.http.enabled = true;
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.tokens = vec![TOKEN.into()];
    // Page every P2 at once: this test is about the intake, not the gate.
    cfg.severity.get_mut(&Severity::P2).unwrap().min_hcs = Some(0.0);
    cfg.alertmanager
        .insert("prod".into(), AlertmanagerConfig::default());
    cfg.validate().unwrap();
    let daemon = Daemon::start(cfg).await;
    let baton = daemon.running.as_ref().unwrap().http_addr.unwrap();
    let (_, js) = nats.client().await;
    let am = Alertmanager::start(&binary, baton).await;

    let started = Utc::now() - Span::seconds(5);
    am.post(&alerts(Utc::now() + Span::hours(1), started)).await;
    let fps = eventually("alertmanager holds both alerts", || async {
        let f = am.fingerprints().await;
        (f.len() == 2).then_some(f)
    })
    .await;
    let ids: Vec<Uuid> = fps
        .iter()
        .map(|(_, fp)| keyed_handoff_id("agent_failure", &format!("am:prod:{fp}")))
        .collect();
    assert_ne!(ids[0], ids[1], "one handoff per alert, not per group");

    // One page per alert.
    for id in &ids {
        eventually("each alert is paged", || async {
            (handoff(baton, *id).await["status"] == "paged").then_some(())
        })
        .await;
    }
    let h = handoff(baton, ids[0]).await;
    assert_eq!(h["team"], "payments", "{h}");
    assert_eq!(h["severity"], "P2");
    let paged: Vec<usize> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(pages_of(&js, *id).await.len());
        }
        v
    };
    assert_eq!(paged, [1, 1], "one page per alert (P2: the owner route)");

    // Alertmanager's repeat sends (every 600 ms here) join: recorded,
    // nobody paged anew.
    for id in &ids {
        eventually("a repeat send is recorded", || async {
            kinds(&events_of(&js, *id).await)
                .iter()
                .filter(|k| **k == "reported_again")
                .count()
                .ge(&2)
                .then_some(())
        })
        .await;
    }
    for (id, n) in ids.iter().zip(&paged) {
        assert_eq!(
            pages_of(&js, *id).await.len(),
            *n,
            "repeat sends page nobody"
        );
    }

    // A person acknowledges one; Alertmanager's resolution still counts.
    let auth = format!("Authorization: Bearer {TOKEN}");
    let (status, body) = http::json(
        baton,
        "POST",
        &format!("/v1/handoffs/{}/ack", ids[0]),
        &[&auth],
        Some(&json!({"by": "alice"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Resolved in Alertmanager: both handoffs resolved by `alertmanager`.
    am.post(&alerts(Utc::now() - Span::seconds(1), started))
        .await;
    for id in &ids {
        eventually("each handoff is resolved", || async {
            (handoff(baton, *id).await["status"] == "resolved").then_some(())
        })
        .await;
        let events = events_of(&js, *id).await;
        let resolved = events.iter().find(|e| e.kind() == "resolved").unwrap();
        assert_eq!(resolved.actor, "alertmanager");
    }
    for (id, n) in ids.iter().zip(&paged) {
        assert_eq!(pages_of(&js, *id).await.len(), *n);
    }
    // The same alerts fire again (a second outage, same fingerprints): a
    // new occurrence each, paged anew, not swallowed by the resolved one.
    am.post(&alerts(Utc::now() + Span::hours(1), Utc::now()))
        .await;
    for (_, fp) in &fps {
        let second = occurrence_id("agent_failure", &format!("am:prod:{fp}"), 2);
        eventually("each alert's second occurrence is paged", || async {
            (handoff(baton, second).await["status"] == "paged").then_some(())
        })
        .await;
        // The `paged` event is stored before the publisher stores its page.
        eventually("the second occurrence's page is stored", || async {
            (pages_of(&js, second).await.len() == 1).then_some(())
        })
        .await;
    }

    // Alertmanager saw every notification succeed.
    assert!(am.webhook_counter("alertmanager_notifications_total").await >= 3.0);
    assert_eq!(
        am.webhook_counter("alertmanager_notifications_failed_total")
            .await,
        0.0
    );
    drop(am);
    daemon.stop().await.unwrap();
}

/// Over HTTP directly: a mixed batch stores the valid alert and answers
/// 422 naming the refused one (recorded as rejected); an unknown
/// integration is 404; a wrong version 422; bad JSON 400; no token 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_alerts_and_payloads_answer_4xx_and_are_recorded() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    cfg.http.enabled = true;
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.tokens = vec![TOKEN.into()];
    cfg.alertmanager
        .insert("prod".into(), AlertmanagerConfig::default());
    let daemon = Daemon::start(cfg).await;
    let baton = daemon.running.as_ref().unwrap().http_addr.unwrap();
    let (_, js) = nats.client().await;
    let auth = format!("Authorization: Bearer {TOKEN}");
    let alert = |fp: &str, sev: &str| {
        json!({"status": "firing", "labels": {"alertname": "X", "severity": sev},
               "annotations": {"summary": "s"}, "startsAt": "2026-11-28T06:00:00Z",
               "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fp})
    };
    let notification = json!({
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "baton", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://am", "alerts": [alert("aaaa", "critical"), alert("bbbb", "page")]
    });
    let (status, body) = http::json(
        baton,
        "POST",
        "/v1/alertmanager/prod",
        &[&auth],
        Some(&notification),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "alerts_refused");
    assert_eq!(body["alerts"][0]["outcome"], "opened", "{body}");
    assert_eq!(body["alerts"][1]["outcome"], "refused");
    assert_eq!(body["alerts"][1]["errors"][0]["code"], "unmapped_severity");
    let stored = keyed_handoff_id("agent_failure", "am:prod:aaaa");
    assert_eq!(body["alerts"][0]["handoff_id"], stored.to_string());
    eventually("the valid alert is stored", || async {
        (!events_of(&js, stored).await.is_empty()).then_some(())
    })
    .await;

    let mut v3 = notification.clone();
    v3["version"] = json!("3");
    let (status, body) =
        http::json(baton, "POST", "/v1/alertmanager/prod", &[&auth], Some(&v3)).await;
    assert_eq!(
        (status, &body["code"]),
        (422, &json!("unsupported_version"))
    );
    let (status, body) = http::json(
        baton,
        "POST",
        "/v1/alertmanager/nope",
        &[&auth],
        Some(&notification),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (404, &json!("unknown_integration"))
    );
    let r = http::send(baton, "POST", "/v1/alertmanager/prod", &[&auth], b"{oops").await;
    assert_eq!(r.status, 400);
    let r = http::send(baton, "POST", "/v1/alertmanager/prod", &[], b"{}").await;
    assert_eq!(r.status, 401);

    // Every refusal is on the rejected stream: the alert, the v3, the
    // unknown integration and the bad JSON.
    eventually("four rejection records", || async {
        let n = stream_json(&js, "BATON_REJECTED").await.len();
        (n == 4).then_some(())
    })
    .await;
    daemon.stop().await.unwrap();
}
