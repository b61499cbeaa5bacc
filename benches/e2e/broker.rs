//! The broker side: a private `nats-server -js` per phase (file storage in
//! a temp dir, never the shared one on 4222) and the raw JetStream figures
//! Baton is compared against, measured with the same client library.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use async_nats::jetstream::{self, consumer::pull::OrderedConfig, stream};
use baton::dev::{free_port, NatsServer};
use bytes::Bytes;
use futures::StreamExt;

/// Publish acks awaited at once: below async-nats's 5,000 pending-ack limit,
/// where publishing would block.
pub const WINDOW: usize = 4096;

/// A private JetStream server; killed, then its store removed, on drop.
pub struct Broker {
    // Field order is drop order: stop the server before removing its files.
    server: NatsServer,
    dir: tempfile::TempDir,
    pub pid: Option<u32>,
}

impl Broker {
    pub fn start() -> anyhow::Result<Broker> {
        let dir = tempfile::tempdir().context("temp dir")?;
        let mut last = None;
        // A probed port can be taken before nats-server binds it.
        // `BATON_BENCH_NATS_CONF=<file>`: a server configuration to run
        // every broker with (e.g. `jetstream { sync_interval: 10s }`).
        let extra: Vec<String> = std::env::var("BATON_BENCH_NATS_CONF")
            .map(|c| vec!["-c".to_string(), c])
            .unwrap_or_default();
        for _ in 0..5 {
            match NatsServer::start_with(dir.path(), free_port(), &extra) {
                Ok(server) => {
                    let pid = crate::sys::nats_server_pid(server.port);
                    return Ok(Broker { server, dir, pid });
                }
                Err(e) => last = Some(e),
            }
        }
        bail!("cannot start nats-server: {}", last.expect("tried"))
    }

    /// The server's store directory.
    pub fn store_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    pub async fn connect(&self) -> anyhow::Result<(async_nats::Client, jetstream::Context)> {
        let client = async_nats::connect(self.url()).await?;
        Ok((client.clone(), jetstream::new(client)))
    }

    /// CPU time nats-server has used so far.
    pub fn cpu(&self) -> Duration {
        self.pid.map_or(Duration::ZERO, crate::sys::process_cpu)
    }
}

/// Publishes every payload with up to [`WINDOW`] acks outstanding and waits
/// for the last ack. This is the raw rate's method, and the way reports are
/// offered to Baton, so both sides publish alike.
pub async fn publish_all(
    js: &jetstream::Context,
    items: impl IntoIterator<Item = (String, Bytes)>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut acks = VecDeque::with_capacity(WINDOW);
    for (subject, payload) in items {
        if acks.len() == WINDOW {
            let ack: jetstream::context::PublishAckFuture = acks.pop_front().expect("full");
            ack.await?;
        }
        acks.push_back(js.publish(subject, payload).await?);
    }
    for ack in acks {
        ack.await?;
    }
    Ok(started.elapsed())
}

/// The raw async publish rate: `n` copies of `payload` into a file-backed
/// stream of their own. Messages per second.
pub async fn raw_publish_rate(
    js: &jetstream::Context,
    payload: Bytes,
    n: usize,
) -> anyhow::Result<f64> {
    js.create_stream(stream::Config {
        name: "RAW".into(),
        subjects: vec!["raw.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let elapsed = publish_all(
        js,
        (0..n).map(|_| ("raw.report".to_string(), payload.clone())),
    )
    .await?;
    js.delete_stream("RAW").await?;
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// A stream's message count and last sequence.
pub async fn stream_state(js: &jetstream::Context, name: &str) -> anyhow::Result<(u64, u64)> {
    let s = js.get_stream(name).await?;
    let st = &s.cached_info().state;
    Ok((st.messages, st.last_sequence))
}

/// When the stream stored its message `seq`, Unix nanoseconds (server clock).
pub async fn stored_at(js: &jetstream::Context, name: &str, seq: u64) -> anyhow::Result<i128> {
    let s = js.get_stream(name).await?;
    Ok(s.get_raw_message(seq).await?.time.unix_timestamp_nanos())
}

/// Polls until `done(messages)` holds for the stream, or fails after `limit`.
pub async fn wait_for_count(
    js: &jetstream::Context,
    name: &str,
    limit: Duration,
    done: impl Fn(u64) -> bool,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + limit;
    loop {
        // A busy server may time out an info request; that is not the end.
        let messages = stream_state(js, name).await.map(|(m, _)| m);
        if let Ok(m) = messages {
            if done(m) {
                return Ok(m);
            }
        }
        if Instant::now() > deadline {
            bail!("{name}: {messages:?} messages after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads a stream from the start up to `last_seq` with an ordered consumer,
/// configured as Baton's projector configures its own, handing each message's
/// sequence, stored time (Unix ns) and payload to `f`.
pub async fn read_all(
    js: &jetstream::Context,
    name: &str,
    filter_subject: &str,
    last_seq: u64,
    mut f: impl FnMut(u64, i128, &Bytes),
) -> anyhow::Result<()> {
    if last_seq == 0 {
        return Ok(());
    }
    let consumer = js
        .get_stream(name)
        .await?
        .create_consumer(OrderedConfig {
            filter_subject: filter_subject.to_string(),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(m) = messages.next().await {
        let m = m?;
        let info = m.info().map_err(|e| anyhow::anyhow!("{e}"))?;
        let seq = info.stream_sequence;
        f(seq, info.published.unix_timestamp_nanos(), &m.payload);
        if seq >= last_seq {
            return Ok(());
        }
    }
    bail!("{name}: ordered consumer ended before sequence {last_seq}")
}
