//! How each of Baton's streams is configured, and [`ensure_streams`], which
//! creates or updates every one of them. The list of streams is
//! [`Stream::ALL`]; `/readyz` checks the same list.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::{Names, StoreError, Stream};

/// What the stream configurations depend on, from `[nats]`, `[limits]` and
/// `[pages]`; built from the config at the top (`server`).
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Stream replicas (`nats.replicas`).
    pub replicas: usize,
    /// Largest report accepted (`limits.max_report_bytes`); `BATON_REPORTS`
    /// takes messages of twice that (at least 2 KiB).
    pub max_report_bytes: usize,
    /// How long `BATON_PAGES` drops duplicate page ids (`pages.duplicate_window`).
    pub pages_duplicate_window: Duration,
    /// How long pages are kept (`pages.max_age`; zero keeps them forever).
    pub pages_max_age: Duration,
}

/// The JetStream configuration of one of Baton's streams.
pub fn stream_config(which: Stream, names: &Names, settings: &StreamSettings) -> stream::Config {
    let file = |subjects: Vec<String>| stream::Config {
        name: names.stream(which),
        subjects,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        ..Default::default()
    };
    let day = Duration::from_secs(24 * 3600);
    match which {
        Stream::Events => stream::Config {
            description: Some("Baton: the handoff event log (source of truth)".into()),
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            duplicate_window: Duration::from_secs(120),
            max_message_size: 4 * 1024 * 1024,
            ..file(vec![names.events_all()])
        },
        Stream::Reports => stream::Config {
            description: Some("Baton: failure reports from agent runners".into()),
            duplicate_window: Duration::from_secs(120),
            max_age: 30 * day,
            max_message_size: i32::try_from(settings.max_report_bytes.max(1024) * 2)
                .unwrap_or(i32::MAX),
            ..file(vec![names.reports_all()])
        },
        Stream::Pages => stream::Config {
            description: Some("Baton: pages for paging consumers".into()),
            // max_age 0 means "keep forever": only a real age bounds the window.
            duplicate_window: if settings.pages_max_age.is_zero() {
                settings.pages_duplicate_window
            } else {
                settings.pages_duplicate_window.min(settings.pages_max_age)
            },
            max_age: settings.pages_max_age,
            ..file(vec![names.pages_all()])
        },
        Stream::Rejected => stream::Config {
            description: Some("Baton: reports that failed validation, with reasons".into()),
            max_age: 30 * day,
            ..file(vec![names.rejected_all()])
        },
        Stream::Jobs => stream::Config {
            description: Some("Baton: scheduled job claims and run records".into()),
            allow_direct: true,
            max_age: 90 * day,
            ..file(vec![names.job_records_all()])
        },
        Stream::Digests => stream::Config {
            description: Some("Baton: daily reviews and ownership audits".into()),
            max_age: 90 * day,
            ..file(vec![names.digests_all()])
        },
        Stream::Snapshots => stream::Config {
            description: Some("Baton: projector snapshots (one message per subject)".into()),
            max_messages_per_subject: 1,
            allow_direct: true,
            ..file(vec![names.snapshots_all()])
        },
        // Monitor state is rebuilt from these on start: the last `ok` must
        // stay however long the period, so no age limit, only a bounded
        // history per monitor.
        Stream::Heartbeats => stream::Config {
            description: Some("Baton: heartbeat monitors' pings".into()),
            max_messages_per_subject: HEARTBEAT_HISTORY,
            max_message_size: HEARTBEAT_MAX_BYTES,
            ..file(vec![names.heartbeats_all()])
        },
        Stream::Credentials => stream::Config {
            description: Some(
                "Baton: person credentials, argon2id-hashed (one message per subject)".into(),
            ),
            // The latest record of each credential is its state: creation,
            // last use and revocation replace it.
            max_messages_per_subject: 1,
            allow_direct: true,
            ..file(vec![names.credentials_all()])
        },
        // Kept forever: who was on call at any past instant is read from
        // here. Small (a few records per rotation per week). Every option
        // used exists on nats-server 2.9.
        Stream::Oncall => stream::Config {
            description: Some("Baton: rotation overrides and participant changes".into()),
            deny_delete: true,
            deny_purge: true,
            duplicate_window: Duration::from_secs(120),
            max_message_size: 64 * 1024,
            ..file(vec![names.oncall_all()])
        },
    }
}

/// Pings kept per heartbeat monitor in `BATON_HEARTBEATS`.
pub const HEARTBEAT_HISTORY: i64 = 64;
/// Largest message `BATON_HEARTBEATS` stores: a ping body is at most 4 KiB
/// (`heartbeat::MAX_PING_BYTES`), plus room for headers.
pub const HEARTBEAT_MAX_BYTES: i32 = 8 * 1024;

/// Creates or updates every stream Baton owns ([`Stream::ALL`]).
/// Idempotent: running it on every start is how upgrades adjust limits.
pub async fn ensure_streams(
    js: &jetstream::Context,
    names: &Names,
    settings: &StreamSettings,
) -> Result<(), StoreError> {
    for which in Stream::ALL {
        let s = stream_config(which, names, settings);
        let name = s.name.clone();
        match js.get_stream(&name).await {
            Ok(_) => {
                js.update_stream(s)
                    .await
                    .map_err(|e| StoreError::nats("update stream", format!("{name}: {e}")))?;
            }
            Err(_) => {
                js.create_stream(s)
                    .await
                    .map_err(|e| StoreError::nats("create stream", format!("{name}: {e}")))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_is_named_and_filed_under_its_own_subjects() {
        let names = Names::new("baton");
        let settings = StreamSettings {
            replicas: 3,
            max_report_bytes: 64 * 1024,
            pages_duplicate_window: Duration::from_secs(24 * 3600),
            pages_max_age: Duration::from_secs(3600),
        };
        let got: Vec<(String, Vec<String>)> = Stream::ALL
            .iter()
            .map(|s| stream_config(*s, &names, &settings))
            .inspect(|c| assert_eq!(c.num_replicas, 3, "{}", c.name))
            .map(|c| (c.name, c.subjects))
            .collect();
        let want = [
            ("BATON_EVENTS", "baton.events.*"),
            ("BATON_REPORTS", "baton.report.*"),
            ("BATON_PAGES", "baton.page.*.*"),
            ("BATON_REJECTED", "baton.rejected.*"),
            ("BATON_JOBS", "baton.jobs.*.*"),
            ("BATON_DIGESTS", "baton.digest.*"),
            ("BATON_SNAPSHOTS", "baton.snapshot.>"),
            ("BATON_HEARTBEATS", "baton.heartbeat.*"),
            ("BATON_CREDENTIALS", "baton.credential.*"),
            ("BATON_ONCALL", "baton.oncall.*"),
        ]
        .map(|(n, s)| (n.to_string(), vec![s.to_string()]));
        assert_eq!(got, want);
        let pages = stream_config(Stream::Pages, &names, &settings);
        assert_eq!(pages.duplicate_window, Duration::from_secs(3600));
        let snapshots = stream_config(Stream::Snapshots, &names, &settings);
        assert_eq!(snapshots.max_messages_per_subject, 1);
        assert!(snapshots.allow_direct);
        let heartbeats = stream_config(Stream::Heartbeats, &names, &settings);
        assert_eq!(heartbeats.max_messages_per_subject, HEARTBEAT_HISTORY);
        assert_eq!(
            heartbeats.max_age,
            Duration::ZERO,
            "a last ok is never aged out"
        );
    }
}
