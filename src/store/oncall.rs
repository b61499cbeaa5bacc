//! `BATON_ONCALL`: the on-call events (overrides, participant changes), one
//! JSON record per message on `<prefix>.oncall.<rotation>`, `Nats-Msg-Id`
//! the event's id so a retried append is stored once. No optimistic
//! concurrency: every event names its own override or is a fact of its own
//! (two participant changes are both kept; the later-effective one wins).

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, consumer::DeliverPolicy};
use async_nats::HeaderMap;
use futures::StreamExt;

use crate::domain::oncall::OncallEvent;
use crate::wire::oncall::OncallDecodeError;

use super::{Follow, Names, StoreError};

/// Append and read access to `BATON_ONCALL`. Cheap to clone.
#[derive(Clone)]
pub struct OncallLog {
    js: jetstream::Context,
    names: Names,
}

/// One stored record's failure as the store's error.
pub fn decode(seq: u64, payload: &[u8]) -> Result<OncallEvent, StoreError> {
    crate::wire::oncall::decode(seq, payload).map_err(|e| match e {
        OncallDecodeError::Decode { seq, message } => StoreError::Decode { seq, message },
        OncallDecodeError::NewerVersion { seq, version } => {
            StoreError::NewerVersion { seq, version }
        }
    })
}

impl OncallLog {
    /// The log under `names` (the stream is made by `ensure_streams`).
    pub fn new(js: jetstream::Context, names: &Names) -> Self {
        Self {
            js,
            names: names.clone(),
        }
    }

    /// Stores one event; its stream sequence.
    pub async fn append(&self, event: &OncallEvent) -> Result<u64, StoreError> {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, event.id.to_string().as_str());
        let ack = self
            .js
            .publish_with_headers(
                self.names.oncall(&event.rotation),
                headers,
                crate::wire::oncall::encode(event).into(),
            )
            .await
            .map_err(|e| StoreError::nats("publish", e))?
            .await
            .map_err(|e| StoreError::nats("append on-call event", e))?;
        Ok(ack.sequence)
    }

    async fn stream(&self) -> Result<jetstream::stream::Stream, StoreError> {
        self.js
            .get_stream(self.names.oncall_stream())
            .await
            .map_err(|e| StoreError::nats("get stream", e))
    }

    /// The stream's last sequence now.
    pub async fn last_seq(&self) -> Result<u64, StoreError> {
        let info = self
            .stream()
            .await?
            .get_info()
            .await
            .map_err(|e| StoreError::nats("stream info", e))?;
        Ok(info.state.last_sequence)
    }

    /// Every event stored after `after` up to `upto`, in order.
    pub async fn read(&self, after: u64, upto: u64) -> Result<Vec<(u64, OncallEvent)>, StoreError> {
        let mut out = Vec::new();
        if upto <= after {
            return Ok(out);
        }
        let mut msgs = super::ordered_messages(
            &self.stream().await?,
            policy_after(after),
            self.names.oncall_all(),
        )
        .await?;
        while let Some(msg) = msgs.next().await {
            let msg = msg.map_err(|e| StoreError::nats("read on-call events", e))?;
            let seq = msg
                .info()
                .map_err(|e| StoreError::nats("message info", e))?
                .stream_sequence;
            out.push((seq, decode(seq, &msg.payload)?));
            if seq >= upto {
                break;
            }
        }
        Ok(out)
    }

    /// Every rotation's events after `after`, followed in order
    /// ([`Follow`]: rebuilt after an outage, each sequence once).
    pub async fn follow(&self, after: u64) -> Result<Follow, StoreError> {
        Follow::open(
            self.stream().await?,
            self.names.oncall_all(),
            after,
            "on-call",
        )
        .await
    }
}

fn policy_after(after: u64) -> DeliverPolicy {
    match after {
        0 => DeliverPolicy::All,
        n => DeliverPolicy::ByStartSequence {
            start_sequence: n + 1,
        },
    }
}
