//! Scheduled jobs against real nats-servers: once per tick across daemons,
//! the drill end to end, and a missed run caught up on start.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use baton::jobs::JobRecord;
use common::*;
use serde_json::json;

async fn job_records(js: &async_nats::jetstream::Context, job: &str) -> Vec<JobRecord> {
    stream_json(js, "BATON_JOBS")
        .await
        .into_iter()
        .filter(|(s, _)| s == &format!("baton.jobs.{job}.run"))
        .map(|(_, v)| serde_json::from_value(v).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_run_each_job_once_per_tick() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    cfg.jobs.enabled = true;
    cfg.jobs.daily_review.schedule = "* * * * * *".into(); // every second
    cfg.jobs.ownership_audit.schedule = "* * * * * *".into();
    cfg.jobs.weekly_drill.enabled = false;
    let a = Daemon::start(cfg.clone()).await;
    let b = Daemon::start(cfg).await;
    let (_c, js) = nats.client().await;
    for job in ["daily-review", "ownership-audit"] {
        let records = eventually("four ticks run", || async {
            let r = job_records(&js, job).await;
            (r.len() >= 4).then_some(r)
        })
        .await;
        let mut per_tick: HashMap<_, usize> = HashMap::new();
        for r in &records {
            *per_tick.entry(r.scheduled_for).or_default() += 1;
            assert_eq!(r.outcome, "ok", "{:?}", r.error);
        }
        assert!(per_tick.values().all(|n| *n == 1), "{job}: {per_tick:?}");
    }
    let digests = stream_json(&js, "BATON_DIGESTS").await;
    assert!(digests.iter().any(|(s, v)| s == "baton.digest.daily"
        && v["markdown"]
            .as_str()
            .unwrap()
            .contains("Daily handoff review")));
    assert!(digests.iter().any(|(s, _)| s == "baton.digest.audit"));
    let text = a.shared().metrics.render() + &b.shared().metrics.render();
    assert!(text.contains("baton_job_runs_total{job=\"daily-review\",outcome=\"ok\"}"));
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_pages_the_drill_route_and_its_figures_reach_the_review() {
    let nats = Nats::start();
    let daemon = Daemon::start(config(&nats.url)).await;
    let (client, js) = nats.client().await;
    let reply = client
        .request("baton.job.weekly-drill", "{}".into())
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    let id: uuid::Uuid = reply["record"]["result"]["handoff_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let page = eventually("drill page", || async {
        pages_of(&js, id).await.into_iter().next()
    })
    .await;
    assert_eq!(
        (page.route.as_str(), page.team.as_str()),
        ("drill", "drill"),
        "never the real on-call"
    );
    assert_eq!(page.hcs.score, 100.0);
    let r = command(&client, "ack", json!({"id": id, "by": "drill-primary"})).await;
    assert_eq!(r["ok"], true, "{r}");
    let r = command(&client, "resolve", json!({"id": id, "by": "drill-primary"})).await;
    assert_eq!(r["ok"], true, "{r}");

    let reply = client
        .request("baton.job.daily-review", "{}".into())
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    let review = &reply["record"]["result"];
    assert_eq!(review["opened"], 0, "a drill is not a production handoff");
    let drill = &review["drills"][0];
    assert_eq!(drill["handoff_id"], id.to_string());
    assert_eq!(drill["result"], "passed");
    assert!(
        drill["ack_seconds"].as_f64().is_some() && drill["containment_seconds"].as_f64().is_some()
    );
    assert!(reply["record"]["markdown"]
        .as_str()
        .unwrap()
        .contains("## Drills"));
    let metrics = daemon.shared().metrics.render();
    assert!(
        !metrics.contains("baton_mtta_seconds_count"),
        "drill kept out of MTTA"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_run_is_caught_up_on_start_and_marked_late() {
    let nats = Nats::start();
    let mut cfg = config(&nats.url);
    cfg.jobs.enabled = true;
    cfg.jobs.daily_review.schedule = "0 0 0 1 1 *".into(); // yearly, Jan 1 00:00 UTC
    cfg.jobs.ownership_audit.enabled = false;
    cfg.jobs.weekly_drill.enabled = false;

    // The job last ran for an earlier Jan 1; the daemon was down at the latest one.
    let (client, js) = nats.client().await;
    baton::store::ensure_streams(
        &js,
        &baton::store::Names::new(&cfg.nats.prefix),
        &baton::server::stream_settings(&cfg),
    )
    .await
    .unwrap();
    let claim = json!({"job": "daily-review", "scheduled_for": "2020-01-01T00:00:00Z", "claimed_by": "test", "claimed_at": "2020-01-01T00:00:00Z"});
    js.publish(
        "baton.jobs.daily-review.claim",
        serde_json::to_vec(&claim).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    drop(client);

    let daemon = Daemon::start(cfg).await;
    let record = eventually("catch-up run", || async {
        job_records(&js, "daily-review").await.into_iter().next()
    })
    .await;
    assert!(record.late);
    assert_eq!(record.trigger, baton::jobs::Trigger::CatchUp);
    let expected = chrono::DateTime::parse_from_rfc3339(&format!(
        "{}-01-01T00:00:00Z",
        chrono::Utc::now().format("%Y")
    ))
    .unwrap();
    assert_eq!(record.scheduled_for, expected);
    daemon.stop().await.unwrap();

    // Restarting does not run it again: the claim is stored.
    let mut cfg = config(&nats.url);
    cfg.jobs.enabled = true;
    cfg.jobs.daily_review.schedule = "0 0 0 1 1 *".into();
    cfg.jobs.ownership_audit.enabled = false;
    cfg.jobs.weekly_drill.enabled = false;
    let again = Daemon::start(cfg).await;
    // Wait on the on-demand service (it starts after catch-up) as the barrier.
    let (client, _) = nats.client().await;
    let reply = client
        .request("baton.job.ownership-audit", "{}".into())
        .await
        .unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()["ok"] == true);
    assert_eq!(
        job_records(&js, "daily-review").await.len(),
        1,
        "caught up once only"
    );
    tokio::time::timeout(Duration::from_secs(10), again.stop())
        .await
        .unwrap()
        .unwrap();
}
