//! Every refusal the hand parser gave, with its code, field and message,
//! now given by the typed requests.

use serde_json::json;

use super::*;
use crate::testkit::policy;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("an object").clone()
}

fn refused(verb: &str, v: Value) -> AppError {
    let what = format!("{verb} {v}");
    let result = match verb {
        "start" => body::<StartBody>(verb, obj(v))
            .and_then(|b| b.into_command(&policy(), 4096))
            .map(|_| ()),
        "digest" => body::<DigestBody>(verb, obj(v)).map(|_| ()),
        "id" => id(&obj(v)).map(|_| ()),
        _ => command(verb, obj(v), 4096).map(|_| ()),
    };
    result
        .err()
        .unwrap_or_else(|| panic!("{what} was not refused"))
}

#[test]
fn refusals_keep_the_hand_parsers_codes_fields_and_messages() {
    let cases = [
        ("ack", json!({}), "missing_field", "by", "by is required"),
        (
            "ack",
            json!({"by": null}),
            "missing_field",
            "by",
            "by is required",
        ),
        (
            "ack",
            json!({"by": 5}),
            "wrong_type",
            "by",
            "by must be a string",
        ),
        (
            "ack",
            json!({"by": "  "}),
            "invalid_value",
            "by",
            "by must be 1-128 printable characters",
        ),
        (
            "ack",
            json!({"by": "a\u{7}"}),
            "invalid_value",
            "by",
            "by must be 1-128 printable characters",
        ),
        (
            "ack",
            json!({"by": "x".repeat(129)}),
            "invalid_value",
            "by",
            "by must be 1-128 printable characters",
        ),
        (
            "override",
            json!({"by": "ic"}),
            "missing_field",
            "reason",
            "override needs a reason",
        ),
        (
            "override",
            json!({"by": "ic", "reason": " "}),
            "missing_field",
            "reason",
            "override needs a reason",
        ),
        (
            "override",
            json!({"by": "ic", "reason": 1}),
            "wrong_type",
            "reason",
            "reason must be a string",
        ),
        (
            "cancel",
            json!({"by": "ic", "reason": null}),
            "missing_field",
            "reason",
            "cancel needs a reason",
        ),
        (
            "resolve",
            json!({"by": "a", "note": 1}),
            "wrong_type",
            "note",
            "note must be a string",
        ),
        (
            "enrich",
            json!({"by": "d"}),
            "missing_field",
            "fields",
            "enrich needs `fields`",
        ),
        (
            "enrich",
            json!({"by": "d", "fields": null}),
            "missing_field",
            "fields",
            "enrich needs `fields`",
        ),
        (
            "enrich",
            json!({"by": "d", "fields": "x"}),
            "wrong_type",
            "fields",
            "fields must be an object of packet fields",
        ),
        (
            "enrich",
            json!({"by": "d", "fields": {"dedup_key": "k"}}),
            "unknown_field",
            "fields.dedup_key",
            "dedup_key cannot change after open",
        ),
        (
            "enrich",
            json!({"by": "d", "fields": {"ttl_seconds": "soon"}}),
            "wrong_type",
            "fields.ttl_seconds",
            "",
        ),
        (
            "enrich",
            json!({"by": "d", "fields": {"team": "a b"}}),
            "invalid_token",
            "fields.team",
            "",
        ),
        (
            "enrich",
            json!({"by": "d", "fields": {"rollback_cmd": "x"}}),
            "unknown_field",
            "fields.rollback_cmd",
            "",
        ),
        (
            "check",
            json!({"by": "o"}),
            "missing_field",
            "item",
            "item is required: its number (1-based) or text",
        ),
        (
            "check",
            json!({"by": "o", "item": null}),
            "missing_field",
            "item",
            "item is required: its number (1-based) or text",
        ),
        (
            "check",
            json!({"by": "o", "item": true}),
            "wrong_type",
            "item",
            "item is a number or a string",
        ),
        (
            "check",
            json!({"by": "o", "item": " "}),
            "wrong_type",
            "item",
            "item is a number or a string",
        ),
        (
            "return",
            json!({"by": "o", "missing": "crm"}),
            "wrong_type",
            "missing",
            "missing is a list of field names",
        ),
        (
            "return",
            json!({"by": "o", "missing": ["a", 1]}),
            "wrong_type",
            "missing",
            "missing is a list of field names",
        ),
        (
            "resubmit",
            json!({"by": "s"}),
            "missing_field",
            "fields",
            "fields must be an object of field values",
        ),
        (
            "resubmit",
            json!({"by": "s", "fields": [1]}),
            "missing_field",
            "fields",
            "fields must be an object of field values",
        ),
        (
            "resubmit",
            json!({"by": "s", "fields": {"": 1}}),
            "invalid_value",
            "fields",
            "bad field name \"\"",
        ),
        (
            "rate",
            json!({"by": "o"}),
            "invalid_value",
            "rating",
            "rating is a whole number from 1 to 5",
        ),
        (
            "rate",
            json!({"by": "o", "rating": 0}),
            "invalid_value",
            "rating",
            "rating is a whole number from 1 to 5",
        ),
        (
            "rate",
            json!({"by": "o", "rating": 6}),
            "invalid_value",
            "rating",
            "rating is a whole number from 1 to 5",
        ),
        (
            "rate",
            json!({"by": "o", "rating": 300}),
            "invalid_value",
            "rating",
            "rating is a whole number from 1 to 5",
        ),
        (
            "rate",
            json!({"by": "o", "rating": "5"}),
            "invalid_value",
            "rating",
            "rating is a whole number from 1 to 5",
        ),
        (
            "rate",
            json!({"by": "o", "rating": 4.5}),
            "invalid_value",
            "rating",
            "rating is a whole number from 1 to 5",
        ),
        (
            "rate",
            json!({"by": "o", "rating": 5, "comment": []}),
            "wrong_type",
            "comment",
            "comment must be a string",
        ),
        (
            "start",
            json!({"by": "s", "fields": {}}),
            "missing_field",
            "template",
            "template is required",
        ),
        (
            "start",
            json!({"template": null, "by": "s", "fields": {}}),
            "wrong_type",
            "template",
            "template must be a string",
        ),
        (
            "start",
            json!({"template": "nope", "by": "s", "fields": {}}),
            "unknown_template",
            "template",
            "",
        ),
        (
            "start",
            json!({"template": "agent_failure", "by": "s", "fields": {}}),
            "unknown_template",
            "template",
            "",
        ),
        (
            "start",
            json!({"template": "sales_to_onboarding", "fields": {}}),
            "missing_field",
            "by",
            "by is required",
        ),
        (
            "start",
            json!({"template": "sales_to_onboarding", "by": "s"}),
            "missing_field",
            "fields",
            "fields must be an object of field values",
        ),
        (
            "start",
            json!({"template": "sales_to_onboarding", "by": "s", "fields": {}, "dedup_key": 7}),
            "wrong_type",
            "dedup_key",
            "dedup_key must be a string",
        ),
        (
            "digest",
            json!({"bucket": 256}),
            "invalid_value",
            "bucket",
            "bucket must be 0..=255",
        ),
        (
            "digest",
            json!({"bucket": "1"}),
            "invalid_value",
            "bucket",
            "bucket must be 0..=255",
        ),
        ("id", json!({}), "missing_field", "id", "id is required"),
        (
            "id",
            json!({"id": 5}),
            "wrong_type",
            "id",
            "id must be a string",
        ),
        (
            "id",
            json!({"id": null}),
            "wrong_type",
            "id",
            "id must be a string",
        ),
        (
            "id",
            json!({"id": "baton.>"}),
            "invalid_id",
            "id",
            "id must be a handoff UUID",
        ),
    ];
    for (verb, body, code, field, message) in cases {
        let e = refused(verb, body.clone());
        assert_eq!(e.code(), code, "{verb} {body}: {e}");
        assert_eq!(e.field().as_deref(), Some(field), "{verb} {body}: {e}");
        assert_eq!(
            e.status(),
            if code == "unknown_template" { 404 } else { 422 }
        );
        if !message.is_empty() {
            assert_eq!(e.to_string(), message, "{verb} {body}");
        }
    }
}

#[test]
fn bodies_become_the_commands_the_hand_parser_built() {
    let cmd = |verb, v| command(verb, obj(v), 4096).unwrap().unwrap();
    assert!(matches!(
        cmd("ack", json!({"id": "ignored", "by": "  alice "})),
        Command::Incident(IncidentCommand::Acknowledge { by }) if by == "alice"
    ));
    assert!(matches!(
        cmd("check", json!({"by": "o", "item": 3})),
        Command::Team(TeamCommand::Check { item, .. }) if item == "3"
    ));
    assert!(matches!(
        cmd("check", json!({"by": "o", "item": "Kickoff"})),
        Command::Team(TeamCommand::Check { item, .. }) if item == "Kickoff"
    ));
    assert!(matches!(
        cmd("return", json!({"by": "o", "missing": null, "reason": null})),
        Command::Team(TeamCommand::Return { missing, reason, .. }) if missing.is_empty() && reason.is_empty()
    ));
    let long = "é".repeat(MAX_TEXT_CHARS + 5);
    assert!(matches!(
        cmd("resolve", json!({"by": "a", "note": long})),
        Command::Incident(IncidentCommand::Resolve { note: Some(n), .. }) if n.chars().count() == MAX_TEXT_CHARS
    ));
    assert!(matches!(
        cmd("rate", json!({"by": "o", "rating": 5})),
        Command::Team(TeamCommand::Rate {
            rating: 5,
            comment: None,
            ..
        })
    ));
    // An empty owner is no owner: it must not erase the stored primary.
    assert!(matches!(
        cmd("enrich", json!({"by": "d", "fields": {"owner": {}}})),
        Command::Incident(IncidentCommand::Enrich { fields, .. }) if fields.owner.is_none()
    ));
    assert!(command("get", Map::new(), 4096).unwrap().is_none());
}

#[test]
fn an_empty_body_is_an_empty_object_and_others_must_be_objects() {
    assert!(object(b"").unwrap().is_empty());
    assert!(object(b" \n").unwrap().is_empty());
    assert_eq!(object(b"[1]").unwrap_err().code(), "not_an_object");
    assert_eq!(object(b"{nope").unwrap_err().code(), "malformed_json");
}

#[test]
fn a_start_with_a_dedup_key_gets_a_stable_id() {
    let start = |key: Option<&str>| {
        let b = StartBody {
            template: "sales_to_onboarding".into(),
            by: "sam".into(),
            fields: Map::new(),
            dedup_key: key.map(String::from),
        };
        b.into_command(&policy(), 4096).unwrap().0
    };
    assert_eq!(start(Some("acme")), start(Some("acme")));
    assert_ne!(start(None), start(None));
}

#[test]
fn list_and_stats_refuse_as_invalid_query() {
    let e = body::<StatsQuery>("stats", obj(json!({"days": "x"})))
        .and_then(|q| q.days())
        .unwrap_err();
    assert_eq!((e.code(), e.status()), ("invalid_query", 400));
    let e = body::<StatsQuery>("stats", obj(json!({"days": -3}))).unwrap_err();
    assert_eq!(e.errors()[0].field, "days");
    let e = body::<super::super::list::ListQuery>("list", obj(json!({"team": 5}))).unwrap_err();
    assert_eq!(
        (e.code(), e.errors()[0].field.as_str()),
        ("invalid_query", "team")
    );
    let q: StatsQuery = body("stats", obj(json!({"days": 7}))).unwrap();
    assert_eq!(q.days().unwrap(), 7);
    assert_eq!(StatsQuery::default().days().unwrap(), 30);
}

/// R14: team fields were cut to `max_field_bytes` *chars*, so a field
/// of multi-byte characters could be four times the byte limit.
#[test]
fn regression_team_fields_are_cut_to_the_byte_limit_at_a_char_boundary() {
    let obj = json!({
        "accents": "é".repeat(100),
        "crabs": "🦀".repeat(10),
        "short": "ok",
        "count": 5,
    });
    let out = work_fields(obj.as_object().unwrap().clone(), 17).unwrap();
    // 2-byte chars: 8 fit in 17 bytes; 4-byte chars: 4 fit.
    assert_eq!(out["accents"], json!("é".repeat(8)));
    assert_eq!(out["crabs"], json!("🦀".repeat(4)));
    assert_eq!((&out["short"], &out["count"]), (&json!("ok"), &json!(5)));
    for v in out.values() {
        if let Value::String(s) = v {
            assert!(s.len() <= 17, "{s:?} is {} bytes", s.len());
        }
    }
}
