//! A runner reports a failure with async-nats: one JetStream publish, stored
//! even while Baton is down; `Nats-Msg-Id` dedupes the runner's retries.
//! `cargo run --example runner_report` (NATS_URL, default the dev server).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4223".into());
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    let report = std::fs::read("examples/reports/p1-complete.json")?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "run-2026-11-21-0412");
    let ack = js
        .publish_with_headers("baton.report.agent_failure", headers, report.into())
        .await?
        .await?;
    println!("stored: {} seq {}", ack.stream, ack.sequence);
    Ok(())
}
