//! Intake throughput over HTTP, beside native reports: the same number of
//! alerts as native `POST /v1/reports` reports, as Alertmanager webhook
//! batches (10 alerts each) and as PagerDuty `trigger` events, each alert a
//! new P1 handoff. Requests go through the real router (`oneshot`, no
//! socket: the figure is Baton's, not the loopback's), 64 in flight. Two
//! rates per kind: alerts accepted (the HTTP answer: stored on
//! `BATON_REPORTS`) and alerts paged (their pages stored).

use std::time::{Duration, Instant};

use anyhow::ensure;
use axum::body::Body;
use axum::http::Request;
use futures::StreamExt;
use serde_json::json;
use tower::ServiceExt;

use crate::broker::{stream_state, wait_for_count, Broker};
use crate::daemon::Daemon;
use crate::fixtures::{config, p1_payload, TEMPLATE};
use crate::report::{Section, Target};

const TOKEN: &str = "bench-token-0123456789";
const ROUTING_KEY: &str = "benchbenchbenchbenchbenchbench01";
const BATCH: usize = 10;
const IN_FLIGHT: usize = 64;

/// Every alert pages at once (the mapped packets are not complete).
const EXTRA: &str = r#"
[severity.P1]
min_hcs = 0

[alertmanager.bench]

[pagerduty.bench]
routing_key = "benchbenchbenchbenchbenchbench01"
rate_limit = 0
"#;

struct Rates {
    accepted: f64,
    paged: f64,
}

/// Sends `requests` (path, body, token?) and waits until `pages` pages are
/// stored in all; each request carries `per` alerts.
async fn drive(
    router: &axum::Router,
    js: &async_nats::jetstream::Context,
    pages_stream: &str,
    requests: Vec<(String, Vec<u8>, bool)>,
    per: usize,
    pages: u64,
) -> anyhow::Result<Rates> {
    let n = (requests.len() * per) as f64;
    let started = Instant::now();
    let statuses: Vec<u16> = futures::stream::iter(requests)
        .map(|(path, body, auth)| {
            let router = router.clone();
            async move {
                let mut req = Request::post(path).header("content-type", "application/json");
                if auth {
                    req = req.header("authorization", format!("Bearer {TOKEN}"));
                }
                let res = router.oneshot(req.body(Body::from(body)).unwrap()).await;
                res.map(|r| r.status().as_u16()).unwrap_or(0)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let accepted = started.elapsed();
    ensure!(
        statuses.iter().all(|s| (200..300).contains(s)),
        "refused: {:?}",
        statuses
            .iter()
            .filter(|s| !(200..300).contains(*s))
            .take(5)
            .collect::<Vec<_>>()
    );
    let limit = Duration::from_secs(60) + Duration::from_millis(n as u64 * 5);
    wait_for_count(js, pages_stream, limit, |m| m >= pages).await?;
    Ok(Rates {
        accepted: n / accepted.as_secs_f64(),
        paged: n / started.elapsed().as_secs_f64(),
    })
}

pub async fn run(daemon_rt: &tokio::runtime::Handle, n: usize) -> anyhow::Result<Section> {
    let n = n - n % BATCH;
    let broker = Broker::start()?;
    let (_client, js) = broker.connect().await?;
    let mut cfg = config(broker.url(), EXTRA)?;
    cfg.http.tokens = vec![TOKEN.into()];
    let names = baton::store::Names::new(&cfg.nats.prefix);
    let pages_stream = names.pages_stream();
    let (daemon, _) = Daemon::start(daemon_rt, cfg).await?;
    let router = baton::http::router(daemon.shared().app_state());

    let native: Vec<_> = (0..n)
        .map(|i| {
            let path = format!("/v1/reports/{TEMPLATE}");
            (path, p1_payload(i).to_vec(), true)
        })
        .collect();
    let native = drive(&router, &js, &pages_stream, native, 1, n as u64).await?;

    let alert = |i: usize| {
        json!({"status": "firing",
               "labels": {"alertname": "BenchDown", "job": "billing-sync", "instance": format!("i-{i}"), "severity": "critical"},
               "annotations": {"summary": "bench alert", "runbook_url": "https://runbooks/bench"},
               "startsAt": "2026-11-28T06:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
               "fingerprint": format!("{i:016x}")})
    };
    let batches: Vec<_> = (0..n / BATCH)
        .map(|b| {
            let alerts: Vec<_> = (0..BATCH).map(|j| alert(b * BATCH + j)).collect();
            let body = json!({"version": "4", "groupKey": "{}:{}", "status": "firing",
                              "receiver": "baton", "groupLabels": {}, "commonLabels": {},
                              "commonAnnotations": {}, "externalURL": "http://am",
                              "truncatedAlerts": 0, "alerts": alerts});
            let bytes = serde_json::to_vec(&body).expect("serializes");
            ("/v1/alertmanager/bench".to_string(), bytes, true)
        })
        .collect();
    let am = drive(&router, &js, &pages_stream, batches, BATCH, 2 * n as u64).await?;

    let events: Vec<_> = (0..n)
        .map(|i| {
            let body = json!({"routing_key": ROUTING_KEY, "event_action": "trigger",
                              "dedup_key": format!("bench-{i}"),
                              "payload": {"summary": "bench event", "source": "bench-host",
                                          "severity": "critical", "group": "billing-sync"}});
            let bytes = serde_json::to_vec(&body).expect("serializes");
            ("/v2/enqueue".to_string(), bytes, false)
        })
        .collect();
    let pd = drive(&router, &js, &pages_stream, events, 1, 3 * n as u64).await?;

    let (rejected, _) = stream_state(&js, &names.rejected_stream()).await?;
    daemon.stop().await?;
    ensure!(rejected == 0, "{rejected} bench alerts were rejected");
    eprintln!(
        "[e2e] intake: native {:.0}, alertmanager {:.0}, pagerduty {:.0} alerts/s accepted",
        native.accepted, am.accepted, pd.accepted
    );

    let mut s = Section::new("intake");
    for (what, r) in [
        (format!("{n} native reports, POST /v1/reports"), &native),
        (
            format!("{n} alerts in Alertmanager batches of {BATCH}, POST /v1/alertmanager"),
            &am,
        ),
        (format!("{n} PagerDuty triggers, POST /v2/enqueue"), &pd),
    ] {
        s.row(
            what,
            format!(
                "{:.0} alerts/s accepted, {:.0} alerts/s to page stored",
                r.accepted, r.paged
            ),
            Target::None,
        );
    }
    s.json = json!({
        "alerts": n,
        "alertmanager_batch": BATCH,
        "in_flight": IN_FLIGHT,
        "native_accepted_per_s": native.accepted,
        "native_paged_per_s": native.paged,
        "alertmanager_accepted_per_s": am.accepted,
        "alertmanager_paged_per_s": am.paged,
        "pagerduty_accepted_per_s": pd.accepted,
        "pagerduty_paged_per_s": pd.paged,
    });
    Ok(s)
}
