//! The on-call follower: reads `BATON_ONCALL` into the shared
//! [`Roster`](crate::app::oncall::Roster) at start-up ([`catch_up`]), then
//! follows it with an ordered consumer ([`run`]) so overrides made on any
//! daemon reach this one's engine. The roster skips events it has already
//! applied (this daemon's own writes are applied when stored).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::app::oncall::Roster;
use crate::store::{oncall::decode, OncallLog, StoreError, StoreHealth};

/// Applies everything stored so far; returns the last sequence read.
pub async fn catch_up(roster: &Roster, log: &OncallLog) -> Result<u64, StoreError> {
    let upto = log.last_seq().await?;
    let events = log.read(0, upto).await?;
    for (seq, e) in &events {
        roster.apply(*seq, e);
    }
    tracing::info!(events = events.len(), "on-call events replayed");
    Ok(upto)
}

/// Follows the stream after `after` until shutdown, rebuilt at once when
/// `health` comes back up after an outage. A record this build cannot read
/// stops the follower with an error (the daemon stops: it must not page
/// from a roster missing an override).
pub async fn run(
    roster: Arc<Roster>,
    log: OncallLog,
    after: u64,
    health: Option<Arc<StoreHealth>>,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let mut msgs = log.follow(after).await?;
    if let Some(h) = &health {
        msgs = msgs.with_health(h);
    }
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = msgs.next() => m,
        };
        let msg = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                // The follower rebuilds its consumer after the last event
                // applied; keep following.
                tracing::warn!(error = %e, "on-call follower: message error");
                continue;
            }
            None => continue,
        };
        let seq = msg
            .info()
            .map_err(|e| StoreError::nats("message info", e))?
            .stream_sequence;
        let event = decode(seq, &msg.payload)?;
        roster.apply(seq, &event);
    }
}
