//! Person credentials in JetStream (`BATON_CREDENTIALS`, the only source
//! of truth) and their check.
//!
//! The daemon follows the stream into memory ([`Credentials::run`]); a
//! credential not seen yet (created a moment ago, or on a daemon still
//! catching up) is read by its subject, which its id names, so a new token
//! works at once on every daemon. A successful check is cached under the
//! SHA-256 of the token, so argon2 runs once per token per process; the
//! cache maps to the credential id, whose record is consulted on every
//! request, so a revocation takes effect as soon as it is followed.
//!
//! Writes ([`create`], [`revoke`], the hourly `last_used`) replace the one
//! message of the credential's subject with the expected last subject
//! sequence, so a revocation is never lost to a concurrent `last_used`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::jetstream::Context;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::authz::Scope;
use super::record::{CredentialRecord, RECORD_VERSION};
use super::token::{self, Minted};
use crate::store::{self, Names, StoreError, StoreHealth};

/// How often `last_used` is written per credential, at most.
pub const TOUCH_EVERY: Duration = Duration::from_secs(3600);
/// Verified tokens remembered per process (then the cache starts over).
const CACHE_MAX: usize = 10_000;

/// Why a token did not authenticate. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a person credential's format, or no such credential.
    #[error("unknown credential")]
    Unknown,
    /// The credential was revoked.
    #[error("credential {0} is revoked")]
    Revoked(String),
    /// The id exists, the secret is wrong (or the record is unreadable).
    #[error("wrong secret for credential {0}")]
    Wrong(String),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("no credential {0}")]
    NotFound(String),
    #[error("credential {0} is already revoked")]
    AlreadyRevoked(String),
    #[error("stream {0} does not exist yet: start `baton serve` once to create Baton's streams")]
    NoStream(String),
    #[error("{0}")]
    Token(#[from] token::TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Sha = [u8; 32];

struct Inner {
    js: Context,
    names: Names,
    /// Each credential's latest record and its stream sequence.
    records: RwLock<HashMap<String, (u64, CredentialRecord)>>,
    /// SHA-256 of a verified token → its credential id.
    verified: Mutex<HashMap<Sha, String>>,
}

/// The daemon's view of every credential. A cheap handle.
#[derive(Clone)]
pub struct Credentials(Arc<Inner>);

impl Credentials {
    /// An empty view over the stream; [`Self::run`] fills it.
    pub fn new(js: Context, names: Names) -> Self {
        Self(Arc::new(Inner {
            js,
            names,
            records: RwLock::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        }))
    }

    /// Follows `BATON_CREDENTIALS` into memory until shutdown
    /// ([`store::Follow`]: each record once, in order, the consumer rebuilt
    /// at once when `health` comes back up after an outage).
    pub async fn run(self, health: Option<Arc<StoreHealth>>, shutdown: CancellationToken) {
        let stream = loop {
            match self.stream().await {
                Ok(s) => break s,
                Err(e) => tracing::warn!(error = %e, "following credentials failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        };
        let mut msgs = store::Follow::new(stream, String::new(), 0, "credentials");
        if let Some(h) = &health {
            msgs = msgs.with_health(h);
        }
        loop {
            let m = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = msgs.next() => m,
            };
            let m = match m {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "following credentials failed; resuming");
                    continue;
                }
                None => continue,
            };
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            match CredentialRecord::decode(&m.payload) {
                Ok(r) => self.remember(seq, r),
                Err(e) => tracing::warn!(seq, error = %e, "skipping a credential record"),
            }
        }
    }

    fn remember(&self, seq: u64, r: CredentialRecord) {
        let mut map = self.0.records.write().expect("not poisoned");
        match map.get(&r.id) {
            Some((known, _)) if *known >= seq => {}
            _ => {
                map.insert(r.id.clone(), (seq, r));
            }
        }
    }

    async fn stream(&self) -> Result<stream::Stream, StoreError> {
        self.0
            .js
            .get_stream(self.0.names.credentials_stream())
            .await
            .map_err(|e| StoreError::nats("get credentials stream", e))
    }

    /// The record of `id`: from memory, else from its subject.
    async fn record(&self, id: &str) -> Result<Option<(u64, CredentialRecord)>, StoreError> {
        if let Some(r) = self.0.records.read().expect("not poisoned").get(id) {
            return Ok(Some(r.clone()));
        }
        let found = read_one(&self.0.js, &self.0.names, id).await?;
        if let Some((seq, r)) = &found {
            self.remember(*seq, r.clone());
        }
        Ok(found)
    }

    /// Checks a token: the active record it proves, or why not.
    pub async fn verify(&self, token: &str) -> Result<CredentialRecord, VerifyError> {
        let id = token::id_of(token).map_err(|_| VerifyError::Unknown)?;
        let (seq, record) = self.record(id).await?.ok_or(VerifyError::Unknown)?;
        if !record.is_active() {
            return Err(VerifyError::Revoked(record.id));
        }
        let key: Sha = Sha256::digest(token.as_bytes()).into();
        let cached = self.0.verified.lock().expect("not poisoned").get(&key) == Some(&record.id);
        if !cached {
            let (t, h) = (token.to_string(), record.hash.clone());
            let ok = tokio::task::spawn_blocking(move || token::verify(&t, &h))
                .await
                .map_err(|e| StoreError::nats("verify credential", e))?;
            if ok != Ok(true) {
                return Err(VerifyError::Wrong(record.id));
            }
            let mut cache = self.0.verified.lock().expect("not poisoned");
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, record.id.clone());
        }
        self.touch(seq, &record, Utc::now());
        Ok(record)
    }

    /// The active record `id`, without a secret: for a session that
    /// already proved the token once (the web console's signed cookie), so
    /// a revocation ends the session at its next request.
    pub async fn active(&self, id: &str) -> Result<CredentialRecord, VerifyError> {
        let (_, record) = self.record(id).await?.ok_or(VerifyError::Unknown)?;
        if !record.is_active() {
            return Err(VerifyError::Revoked(record.id));
        }
        Ok(record)
    }

    /// Writes `last_used` when it is older than [`TOUCH_EVERY`], in the
    /// background; a lost race (another daemon, a revocation) is fine.
    fn touch(&self, seq: u64, record: &CredentialRecord, now: DateTime<Utc>) {
        let stale = record.last_used.is_none_or(|t| {
            now.signed_duration_since(t).to_std().unwrap_or_default() >= TOUCH_EVERY
        });
        if !stale {
            return;
        }
        let mut updated = record.clone();
        updated.last_used = Some(now);
        // Remembered at once (same sequence), so concurrent requests do
        // not each write; the follower brings the stored one.
        self.0
            .records
            .write()
            .expect("not poisoned")
            .insert(updated.id.clone(), (seq, updated.clone()));
        let (js, names) = (self.0.js.clone(), self.0.names.clone());
        tokio::spawn(async move {
            if let Err(e) = replace(&js, &names, &updated, seq).await {
                tracing::debug!(credential = %updated.id, error = %e, "last_used not written");
            }
        });
    }

    /// Every record known, of `person` or of everyone, oldest first.
    pub fn list(&self, person: Option<&str>) -> Vec<CredentialRecord> {
        let mut out: Vec<CredentialRecord> = self
            .0
            .records
            .read()
            .expect("not poisoned")
            .values()
            .map(|(_, r)| r.clone())
            .filter(|r| person.is_none_or(|p| r.person == p))
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }
}

/// The latest record on `<prefix>.credential.<id>`, if any.
pub async fn read_one(
    js: &Context,
    names: &Names,
    id: &str,
) -> Result<Option<(u64, CredentialRecord)>, StoreError> {
    if !token::is_id(id) {
        return Ok(None);
    }
    let stream = js
        .get_stream(names.credentials_stream())
        .await
        .map_err(|e| StoreError::nats("get credentials stream", e))?;
    match stream
        .get_last_raw_message_by_subject(&names.credential(id))
        .await
    {
        Ok(m) => match CredentialRecord::decode(&m.payload) {
            Ok(r) => Ok(Some((m.sequence, r))),
            Err(e) => {
                tracing::warn!(credential = id, error = %e, "unreadable credential record");
                Ok(None)
            }
        },
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(StoreError::nats("read credential", e)),
    }
}

/// Stores `record` on its subject if the subject's last sequence is still
/// `expected` (0: none yet). `Conflict` when another write came first.
async fn replace(
    js: &Context,
    names: &Names,
    record: &CredentialRecord,
    expected: u64,
) -> Result<u64, WriteError> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
        expected.to_string().as_str(),
    );
    let ack = js
        .publish_with_headers(
            names.credential(&record.id),
            headers,
            record.encode().into(),
        )
        .await
        .map_err(|e| StoreError::nats("publish credential", e))?
        .await
        .map_err(|e| match e.kind() {
            PublishErrorKind::WrongLastSequence => WriteError::Store(StoreError::Conflict),
            PublishErrorKind::StreamNotFound => WriteError::NoStream(names.credentials_stream()),
            _ => WriteError::Store(StoreError::nats("publish credential", e)),
        })?;
    Ok(ack.sequence)
}

/// Makes a credential for `person` and stores its record; the token in
/// the answer is the only copy of the secret (show it once).
pub async fn create(
    js: &Context,
    names: &Names,
    person: &str,
    scope: Scope,
    name: Option<String>,
    now: DateTime<Utc>,
) -> Result<(Minted, CredentialRecord), WriteError> {
    let minted = tokio::task::spawn_blocking(token::mint)
        .await
        .map_err(|e| StoreError::nats("mint credential", e))??;
    let record = CredentialRecord {
        version: RECORD_VERSION,
        id: minted.id.clone(),
        person: person.to_string(),
        scope,
        name,
        hash: minted.hash.clone(),
        created_at: now,
        revoked_at: None,
        last_used: None,
    };
    replace(js, names, &record, 0).await?;
    Ok((minted, record))
}

/// Revokes credential `id` (retrying past concurrent `last_used` writes).
pub async fn revoke(
    js: &Context,
    names: &Names,
    id: &str,
    now: DateTime<Utc>,
) -> Result<CredentialRecord, WriteError> {
    for _ in 0..8 {
        let (seq, mut r) = read_one(js, names, id)
            .await?
            .ok_or_else(|| WriteError::NotFound(id.into()))?;
        if !r.is_active() {
            return Err(WriteError::AlreadyRevoked(id.into()));
        }
        r.revoked_at = Some(now);
        match replace(js, names, &r, seq).await {
            Ok(_) => return Ok(r),
            Err(WriteError::Store(StoreError::Conflict)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Every stored record (the CLI's `list`), oldest first.
pub async fn list_stored(js: &Context, names: &Names) -> Result<Vec<CredentialRecord>, WriteError> {
    let mut stream = js
        .get_stream(names.credentials_stream())
        .await
        .map_err(|_| WriteError::NoStream(names.credentials_stream()))?;
    let last = stream
        .info()
        .await
        .map_err(|e| StoreError::nats("credentials info", e))?
        .state
        .last_sequence;
    let mut out = Vec::new();
    if last == 0 {
        return Ok(out);
    }
    let mut msgs = store::ordered_messages(&stream, DeliverPolicy::All, String::new()).await?;
    while let Some(m) = msgs.next().await {
        let m = m.map_err(|e| StoreError::nats("read credentials", e))?;
        let seq = m.info().map(|i| i.stream_sequence).unwrap_or(last);
        if let Ok(r) = CredentialRecord::decode(&m.payload) {
            out.push(r);
        }
        if seq >= last {
            break;
        }
    }
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}
