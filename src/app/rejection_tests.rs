use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::domain::{parse_report, ParseLimits};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 6, 0, 0).unwrap()
}

fn refused<'a>(payload: &'a [u8], reasons: &'a [FieldError]) -> Refused<'a> {
    Refused {
        template: "agent_failure",
        subject: "baton.report.agent_failure",
        reasons,
        payload,
        report_seq: 7,
        rejected_at: at(),
    }
}

/// What validation says about `payload` under a `max_report_bytes` limit,
/// recorded: the record the daemon would store.
fn record_for(payload: &[u8], max_report_bytes: usize) -> Rejection {
    let reasons = parse_report(
        payload,
        ParseLimits {
            max_report_bytes,
            max_field_bytes: 4096,
        },
    )
    .expect_err("invalid");
    build(&refused(payload, &reasons))
}

fn assert_fits(record: &Rejection) {
    let len = serialized_len(record);
    assert!(len <= RECORD_BUDGET, "record is {len} bytes");
}

#[test]
fn a_small_report_keeps_its_payload_as_json_with_size_and_hash() {
    let payload = br#"{"severity":"P7"}"#;
    let r = record_for(payload, 65536);
    assert_eq!(r.payload, Some(json!({"severity": "P7"})));
    assert_eq!(r.excerpt, None);
    assert_eq!(r.payload_bytes, Some(payload.len() as u64));
    // sha256 of the exact bytes, as `sha256sum` prints it.
    assert_eq!(
        r.payload_sha256.as_deref(),
        Some(sha256_hex(payload).as_str())
    );
    assert_eq!(r.payload_sha256.as_ref().unwrap().len(), 64);
}

#[test]
fn text_that_is_not_json_is_kept_as_text() {
    let r = record_for(b"{not json", 65536);
    assert_eq!(r.payload, Some(json!("{not json")));
}

/// Issue 12 §5: a 250 KB body of control bytes escaped to a 1.2 MB record
/// the broker refused, so the rejection was lost.
#[test]
fn regression_a_max_size_body_of_control_bytes_gives_a_record_that_fits() {
    for max in [64 * 1024, 250_000, crate::config::MAX_REPORT_BYTES_LIMIT] {
        for body in [vec![0u8; max], vec![0x01u8; max + 1]] {
            let r = record_for(&body, max);
            assert_fits(&r);
            assert_eq!(r.payload, None);
            assert_eq!(r.payload_bytes, Some(body.len() as u64));
            assert_eq!(r.payload_sha256.as_deref(), Some(&*sha256_hex(&body)));
            let excerpt = r.excerpt.as_deref().unwrap();
            assert_eq!(excerpt.len(), EXCERPT_BYTES);
            assert!(excerpt.bytes().all(|b| b == body[0]));
        }
    }
}

#[test]
fn a_deeply_nested_report_gives_a_record_that_fits() {
    let max = 64 * 1024;
    let depth = max / 2 - 8;
    let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    let r = record_for(&body, max);
    assert_fits(&r);
    // serde_json's recursion limit refuses it; it is kept as text unless
    // that is too big.
    assert!(r.payload.is_some() || r.excerpt.is_some());
}

#[test]
fn a_report_with_a_huge_field_of_control_characters_keeps_an_excerpt() {
    let max = 256 * 1024;
    // Valid JSON, escaped already: parsed, each `\u0001` is one char that
    // re-escapes to six bytes, so the payload as JSON stays ~ as big.
    let body = format!(
        r#"{{"severity":"P1","objective":"{}"}}"#,
        "\\u0001".repeat(max / 6 - 40)
    )
    .into_bytes();
    assert!(body.len() <= max);
    let reasons = vec![FieldError::new("objective", "odd", "x")];
    let r = build(&refused(&body, &reasons));
    assert_fits(&r);
    assert_eq!(r.payload, None);
    assert!(r
        .excerpt
        .as_deref()
        .unwrap()
        .starts_with(r#"{"severity":"P1""#));
}

#[test]
fn thousands_of_unknown_fields_with_huge_names_give_a_record_that_fits() {
    let max = crate::config::MAX_REPORT_BYTES_LIMIT;
    // Long control-character keys: each becomes an `unknown_field` reason
    // naming it.
    let mut obj = serde_json::Map::new();
    obj.insert("severity".into(), json!("P1"));
    let mut i = 0;
    while serde_json::to_vec(&obj).unwrap().len() < max - 4096 {
        obj.insert(format!("{i}{}", "\u{1}".repeat(600)), json!(1));
        i += 1;
    }
    let body = serde_json::to_vec(&obj).unwrap();
    let r = record_for(&body, max);
    assert_fits(&r);
    assert!(r.reasons.len() <= MAX_REASONS, "{}", r.reasons.len());
    let last = r.reasons.last().unwrap();
    assert_eq!(last.code, REASONS_TRUNCATED);
    assert!(
        last.message.contains("more reasons not recorded"),
        "{last:?}"
    );
}

#[test]
fn reasons_are_capped_with_a_last_one_saying_how_many_were_cut() {
    let reasons: Vec<FieldError> = (0..250)
        .map(|i| FieldError::new(format!("f{i}"), "unknown_field", "no such field"))
        .collect();
    let r = build(&refused(b"{}", &reasons));
    assert_eq!(r.reasons.len(), MAX_REASONS);
    assert_eq!(r.reasons[..99], reasons[..99]);
    assert_eq!(r.reasons[99].code, REASONS_TRUNCATED);
    assert_eq!(
        r.reasons[99].message,
        "151 more reasons not recorded (250 in all)"
    );
    // Exactly the cap: all kept, nothing said.
    let r = build(&refused(b"{}", &reasons[..MAX_REASONS]));
    assert_eq!(r.reasons, reasons[..MAX_REASONS]);
}

#[test]
fn huge_template_and_reason_texts_are_clipped() {
    let name = "t".repeat(100_000);
    let reasons = vec![FieldError::new(
        "é".repeat(100_000),
        &"c".repeat(1000),
        "\u{0}".repeat(100_000),
    )];
    let r = build(&Refused {
        template: &name,
        subject: &format!("baton.report.{name}"),
        ..refused(b"{}", &reasons)
    });
    assert_fits(&r);
    assert_eq!(r.template.len(), 256);
    assert!(r.reasons[0].field.len() <= 256);
    assert_eq!(r.reasons[0].message.len(), 1024);
}

#[test]
fn an_excerpt_ends_on_a_character_boundary() {
    // "é" is two bytes: a cut at an odd byte drops the half character.
    let text = "é".repeat(10);
    assert_eq!(excerpt(text.as_bytes(), 5), "éé");
    assert_eq!(excerpt(text.as_bytes(), 6), "ééé");
    assert_eq!(excerpt(text.as_bytes(), 100), text);
    // Invalid bytes become U+FFFD, and the excerpt stays valid text.
    assert_eq!(excerpt(&[b'a', 0xff, b'b'], 3), "a\u{fffd}b");
    assert_eq!(excerpt(&[0x80; 10], 4), "\u{fffd}".repeat(4));
}

#[test]
fn a_literal_null_body_is_kept_as_an_excerpt() {
    let r = record_for(b"null", 65536);
    assert_eq!(r.payload, None);
    assert_eq!(r.excerpt.as_deref(), Some("null"));
}

/// Stored bytes are forever: a record written before the bound (no
/// excerpt, size or hash) still decodes.
#[test]
fn an_old_format_record_still_decodes() {
    let old = r#"{"template":"agent_failure","subject":"baton.report.agent_failure",
        "reasons":[{"field":"","code":"malformed_json","message":"not valid JSON"}],
        "payload":"{not json","report_seq":3,"rejected_at":"2026-01-02T03:04:05Z"}"#;
    let r: Rejection = serde_json::from_str(old).expect("old record decodes");
    assert_eq!(r.payload, Some(json!("{not json")));
    assert_eq!(
        (r.excerpt, r.payload_bytes, r.payload_sha256),
        (None, None, None)
    );
    assert_eq!(r.report_seq, 3);
    assert_eq!(r.reasons[0].code, "malformed_json");
}

#[test]
fn a_new_record_round_trips() {
    let body = vec![0u8; 100_000];
    let reasons = vec![FieldError::new("", "too_large", "big")];
    let r = build(&refused(&body, &reasons));
    let back: Rejection = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
    assert_eq!(back.excerpt, r.excerpt);
    assert_eq!(back.payload_bytes, Some(100_000));
    assert_eq!(back.payload_sha256, r.payload_sha256);
    assert_eq!(back.payload, None);
}
