//! End to end over a real socket: a daemon with its HTTP server on its own
//! nats-server; reports in over HTTP, one acknowledged, one left to
//! escalate; then `GET /metrics` parsed with a real exposition-format
//! parser must hold exactly those MTTA, HCS and escalation counts.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::*;
use prometheus_parse::{Sample, Scrape, Value as Prom};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "e2e-token-0123456789";

/// A minimal HTTP/1.1 exchange (`Connection: close`), so the test needs no
/// HTTP client crate: status and body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    http_bytes(addr, method, path, &body).await
}

/// [`http`] with a body of any bytes.
async fn http_bytes(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).expect("utf-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("a full reply");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "this helper reads whole bodies only"
    );
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

async fn json_of(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let (status, text) = http(addr, method, path, body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let (status, text) = http(addr, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid exposition format")
        .samples
}

fn labels_match(s: &Sample, labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
}

/// A counter's or gauge's value (0 when the series does not exist yet).
fn value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == metric && labels_match(s, labels))
        .map(|s| match s.value {
            Prom::Counter(v) | Prom::Gauge(v) | Prom::Untyped(v) => v,
            _ => panic!("{metric} is not a single value"),
        })
        .sum()
}

/// A histogram's cumulative bucket counts by upper bound.
fn buckets(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> HashMap<String, f64> {
    let s = samples
        .iter()
        .find(|s| s.metric == metric && labels_match(s, labels))
        .unwrap_or_else(|| panic!("no {metric}{labels:?}"));
    let Prom::Histogram(b) = &s.value else {
        panic!("{metric} is not a histogram")
    };
    b.iter()
        .map(|c| (c.less_than.to_string(), c.count))
        .collect()
}

fn report(sev: &str, run: &str) -> Value {
    let mut v: Value = serde_json::from_slice(&p1(run)).unwrap();
    v["severity"] = json!(sev);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_an_ack_and_an_escalation_show_in_the_scraped_metrics() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    cfg.http.enabled = true;
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.tokens = vec![TOKEN.into()];
    let daemon = Daemon::start(cfg).await;
    let addr = daemon
        .running
        .as_ref()
        .unwrap()
        .http_addr
        .expect("HTTP is on");
    assert_eq!(http(addr, "GET", "/readyz", None).await.0, 200);

    // P2 to acknowledge (20 s SLA: the ack is never late), P1 left to
    // escalate (700 ms, then one repeat 400 ms later), and an incomplete P3
    // whose score lands in a lower HCS bucket.
    let post = |r: Value| async move {
        let (status, a) = json_of(addr, "POST", "/v1/reports/agent_failure", Some(&r)).await;
        assert_eq!(status, 202, "{a}");
        a
    };
    let acked = post(report("P2", "ack-me")).await;
    let escalating = post(report("P1", "leave-me")).await;
    let sparse = post(json!({
        "severity": "P3", "run_id": "s-1", "workflow_id": "search-reindex",
        "objective": "Nightly reindex", "error_summary": "out of memory", "team": "search"
    }))
    .await;
    let sparse_score = sparse["hcs"]["score"].as_f64().unwrap();
    assert!(sparse_score < 70.0, "{sparse}");

    let acked_id = acked["handoff_id"].as_str().unwrap();
    eventually("the P2 is paged", || async {
        let (_, h) = json_of(addr, "GET", &format!("/v1/handoffs/{acked_id}"), None).await;
        (h["status"] == "paged").then_some(())
    })
    .await;
    let (status, reply) = json_of(
        addr,
        "POST",
        &format!("/v1/handoffs/{acked_id}/ack"),
        Some(&json!({"by": "alice"})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let mtta = reply["handoff"]["mtta_seconds"].as_f64().unwrap();

    let escalating_id = escalating["handoff_id"].as_str().unwrap();
    eventually(
        "two escalation steps and their four pages (two routes each)",
        || async {
            let (_, h) = json_of(addr, "GET", &format!("/v1/handoffs/{escalating_id}"), None).await;
            let samples = scrape(addr).await;
            (h["escalation"]["steps"] == 2
                && value(&samples, "baton_escalation_lateness_seconds_count", &[]) == 4.0)
                .then_some(())
        },
    )
    .await;

    let m = scrape(addr).await;
    // MTTA: one observation, P2, in the bucket its value belongs to.
    assert_eq!(
        value(&m, "baton_mtta_seconds_count", &[("severity", "P2")]),
        1.0
    );
    assert_eq!(value(&m, "baton_mtta_seconds_count", &[]), 1.0);
    let sum = value(&m, "baton_mtta_seconds_sum", &[("severity", "P2")]);
    assert!((sum - mtta).abs() < 1e-6, "{sum} vs {mtta}");
    let b = buckets(&m, "baton_mtta_seconds", &[("severity", "P2")]);
    assert_eq!(b["inf"], 1.0);
    assert_eq!(b["900"], 1.0, "acknowledged within the P2 band");

    // HCS at open: the two complete packets score 100, the sparse one less.
    let t = ("template", "agent_failure");
    for sev in ["P1", "P2"] {
        let b = buckets(&m, "baton_hcs", &[("severity", sev), t]);
        assert_eq!((b["100"], b["90"], b["0"]), (1.0, 0.0, 0.0), "{sev}: {b:?}");
    }
    let b = buckets(&m, "baton_hcs", &[("severity", "P3"), t]);
    let upper = (sparse_score / 10.0).ceil() * 10.0;
    assert_eq!(
        b[&upper.to_string()],
        1.0,
        "{sparse_score} ≤ {upper}: {b:?}"
    );
    assert_eq!(b[&(upper - 10.0).to_string()], 0.0, "{b:?}");
    assert_eq!(b["0"], 0.0);
    assert_eq!(value(&m, "baton_handoffs_opened_total", &[]), 3.0);

    // Escalations: both steps of the P1's only level; one SLA breach.
    assert_eq!(
        value(
            &m,
            "baton_escalations_total",
            &[("severity", "P1"), ("level", "1")]
        ),
        2.0
    );
    assert_eq!(value(&m, "baton_escalations_total", &[]), 2.0);
    assert_eq!(
        value(&m, "baton_sla_breaches_total", &[("severity", "P1")]),
        1.0
    );
    assert_eq!(value(&m, "baton_sla_breaches_total", &[]), 1.0);

    // Gauges and gate holds.
    let open = |sev, state| {
        value(
            &m,
            "baton_open_handoffs",
            &[("severity", sev), ("state", state)],
        )
    };
    assert_eq!(open("P2", "acknowledged"), 1.0);
    assert_eq!(open("P1", "escalated"), 1.0);
    assert_eq!(open("P3", "held"), 1.0);
    assert_eq!(
        value(&m, "baton_gate_holds_total", &[("severity", "P3")]),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "baton_packet_missing_field_total",
            &[("field", "owner.primary")]
        ),
        1.0
    );
    assert_eq!(value(&m, "baton_overdue_deadlines", &[]), 0.0);

    // The tracker's figures agree.
    let (status, s) = json_of(addr, "GET", "/v1/stats?days=1", None).await;
    assert_eq!(status, 200);
    assert_eq!(s["total"], 3);
    assert_eq!(s["by_severity"]["P2"]["acknowledged"], 1);
    assert_eq!(s["by_severity"]["P1"]["sla_breaches"], 1);
    assert_eq!(s["by_severity"]["P2"]["sla_breaches"], 0);

    // Graceful shutdown takes the HTTP server down with the rest.
    daemon.stop().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Issue 12 §5: a 250 KB body of control bytes was answered 422 while its
/// rejection record (the bytes escaped as JSON, 6× bigger) was refused by
/// the broker and lost. At the largest `max_report_bytes` allowed, over
/// HTTP and over NATS, the record is stored: an excerpt, the size and the
/// SHA-256 of the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_max_size_body_of_control_bytes_is_refused_and_its_rejection_stored() {
    use sha2::Digest;
    let nats = Nats::start();
    let max = baton::config::MAX_REPORT_BYTES_LIMIT;
    let mut cfg = config(&nats.url);
    cfg.http.enabled = true;
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.tokens = vec![TOKEN.into()];
    cfg.limits.max_report_bytes = max;
    cfg.http.max_body_bytes = max;
    cfg.validate()
        .expect("the largest max_report_bytes is valid");
    let daemon = Daemon::start(cfg).await;
    let addr = daemon.running.as_ref().unwrap().http_addr.unwrap();
    let (_, js) = nats.client().await;

    let over_http = vec![0x01u8; max];
    let (status, problem) = http_bytes(addr, "POST", "/v1/reports/agent_failure", &over_http).await;
    assert_eq!(status, 422, "{problem}");
    // Over NATS too, one byte past the limit (`too_large`).
    let over_nats = vec![0x00u8; max + 1];
    let seq = publish_report(&js, "agent_failure", &over_nats).await;

    let records = eventually("both rejections stored", || async {
        let r = stream_json(&js, "BATON_REJECTED").await;
        (r.len() == 2).then_some(r)
    })
    .await;
    for (body, seq, code) in [
        (&over_http, 0, "malformed_json"),
        (&over_nats, seq, "too_large"),
    ] {
        let (subject, r) = records
            .iter()
            .find(|(_, r)| r["report_seq"] == seq)
            .unwrap_or_else(|| panic!("no record for seq {seq}: {records:?}"));
        assert_eq!(subject, "baton.rejected.agent_failure");
        assert_eq!(r["reasons"][0]["code"], code, "{}", r["reasons"]);
        assert_eq!(r["payload_bytes"], body.len());
        let sha: String = sha2::Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(r["payload_sha256"], sha.as_str());
        assert!(r.get("payload").is_none(), "payload not kept whole");
        let excerpt = r["excerpt"].as_str().unwrap();
        assert_eq!(excerpt.len(), 4096);
        assert!(excerpt.bytes().all(|b| b == body[0]));
        // It decodes as the stored type.
        let decoded: baton::app::reports::Rejection =
            serde_json::from_value(r.clone()).expect("record decodes");
        assert_eq!(decoded.payload_bytes, Some(body.len() as u64));
    }
    let m = scrape(addr).await;
    assert_eq!(
        value(
            &m,
            "baton_reports_rejected_total",
            &[("template", "agent_failure")]
        ),
        2.0
    );
    daemon.stop().await.unwrap();
}
