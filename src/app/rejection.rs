//! The rejection record, bounded: what lands on
//! `<prefix>.rejected.<template>` must always fit in one broker message,
//! whatever the report was.
//!
//! A report's bytes escaped as JSON text grow up to 6× (`\u0000` for each
//! control byte), so storing the payload as it came made a 250 KB body a
//! 1.2 MB record the broker refused, and the rejection was lost. So the
//! payload is kept as JSON only while the whole record stays within
//! [`RECORD_BUDGET`]; beyond that the record keeps an excerpt of the first
//! [`EXCERPT_BYTES`] and the payload's size and SHA-256, which identify it
//! in whatever the publisher kept. Reasons are capped too (count and
//! bytes): a pathological report can produce thousands of them. Pure: the
//! caller stores what [`build`] returns.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::reports::Rejection;
use crate::domain::FieldError;

/// Most bytes a serialized record takes; far under the broker's 1 MiB
/// default `max_payload`, so a rejection can always be stored.
pub const RECORD_BUDGET: usize = 64 * 1024;
/// Most bytes of the original payload an excerpt shows (before escaping).
pub const EXCERPT_BYTES: usize = 4 * 1024;
/// Most reasons kept, the last one saying how many more were cut.
pub const MAX_REASONS: usize = 100;
/// Most bytes the kept reasons take serialized; with the excerpt (≤ 6 ×
/// [`EXCERPT_BYTES`] escaped) and the clipped names this keeps a record
/// within [`RECORD_BUDGET`].
const REASONS_BUDGET: usize = 32 * 1024;
/// Longest template name kept (bytes); the subject is clipped to twice
/// that. A name that long is not a template anyway.
const NAME_BYTES: usize = 256;
/// Longest reason field, code and message kept (bytes).
const REASON_FIELD_BYTES: usize = 256;
const REASON_CODE_BYTES: usize = 64;
const REASON_MESSAGE_BYTES: usize = 1024;

/// The one reason of a report the ingest gave up on: its events (or its
/// rejection) could not be stored in `limits.max_report_attempts`
/// deliveries.
pub const UNRECORDABLE: &str = "unrecordable";

/// The code of the last reason when some were cut.
pub const REASONS_TRUNCATED: &str = "reasons_truncated";

/// What is known about a refused report, before bounding.
pub struct Refused<'a> {
    /// The template the report named.
    pub template: &'a str,
    /// The subject it was published on.
    pub subject: &'a str,
    /// Every problem found, as many as there are.
    pub reasons: &'a [FieldError],
    /// The report's bytes, as they came.
    pub payload: &'a [u8],
    /// Its `BATON_REPORTS` sequence; 0 over HTTP.
    pub report_seq: u64,
    /// When it was refused.
    pub rejected_at: DateTime<Utc>,
}

/// The record to store for `r`: within [`RECORD_BUDGET`] serialized,
/// whatever `r` holds.
pub fn build(r: &Refused<'_>) -> Rejection {
    let mut record = Rejection {
        template: clipped(r.template, NAME_BYTES),
        subject: clipped(r.subject, 2 * NAME_BYTES),
        reasons: bounded_reasons(r.reasons),
        payload: None,
        excerpt: None,
        payload_bytes: Some(r.payload.len() as u64),
        payload_sha256: Some(sha256_hex(r.payload)),
        report_seq: r.report_seq,
        rejected_at: r.rejected_at,
    };
    // Only a payload no bigger than the budget can fit; parsing a bigger
    // one would be wasted.
    let parsed = (r.payload.len() <= RECORD_BUDGET).then(|| {
        serde_json::from_slice(r.payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(r.payload).into_owned()))
    });
    // A literal `null` body is kept as an excerpt: an absent payload
    // always means "see the excerpt".
    if let Some(v) = parsed.filter(|v| !v.is_null()) {
        record.payload = Some(v);
        if serialized_len(&record) <= RECORD_BUDGET {
            return record;
        }
        record.payload = None;
    }
    record.excerpt = Some(excerpt(r.payload, EXCERPT_BYTES));
    record
}

/// Bytes `record` takes as stored.
pub fn serialized_len(record: &Rejection) -> usize {
    serde_json::to_vec(record).map_or(usize::MAX, |v| v.len())
}

/// At most [`MAX_REASONS`] reasons within [`REASONS_BUDGET`], each clipped;
/// when some are cut, the last one says how many.
fn bounded_reasons(reasons: &[FieldError]) -> Vec<FieldError> {
    // Past the cap, one place is left for the reason saying so.
    let room = if reasons.len() > MAX_REASONS {
        MAX_REASONS - 1
    } else {
        MAX_REASONS
    };
    let mut kept = Vec::new();
    let mut bytes = 0;
    for r in reasons {
        let r = FieldError {
            field: clipped(&r.field, REASON_FIELD_BYTES),
            code: clipped(&r.code, REASON_CODE_BYTES),
            message: clipped(&r.message, REASON_MESSAGE_BYTES),
        };
        let len = serde_json::to_vec(&r).map_or(usize::MAX, |v| v.len());
        if kept.len() == room || bytes + len > REASONS_BUDGET {
            break;
        }
        bytes += len;
        kept.push(r);
    }
    if kept.len() < reasons.len() {
        let cut = reasons.len() - kept.len();
        kept.push(FieldError::new(
            "",
            REASONS_TRUNCATED,
            format!("{cut} more reasons not recorded ({} in all)", reasons.len()),
        ));
    }
    kept
}

/// The first `max` bytes of `payload` (fewer, to end on a character
/// boundary) as text; invalid UTF-8 becomes U+FFFD.
pub fn excerpt(payload: &[u8], max: usize) -> String {
    let mut cut = payload.len().min(max);
    // A cut through a character the payload holds whole drops that
    // character rather than show it as U+FFFD.
    if let Some(last) = payload[..cut].utf8_chunks().last() {
        let start = cut - last.invalid().len();
        if start < cut && cut < payload.len() {
            let next = &payload[start..payload.len().min(start + 4)];
            let whole = std::str::from_utf8(next).map_or_else(|e| e.valid_up_to() > 0, |_| true);
            if whole {
                cut = start;
            }
        }
    }
    String::from_utf8_lossy(&payload[..cut]).into_owned()
}

/// `s` cut to at most `max` bytes on a character boundary.
fn clipped(s: &str, max: usize) -> String {
    let mut s = s.to_string();
    crate::domain::truncate(&mut s, max);
    s
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
#[path = "rejection_tests.rs"]
mod tests;
