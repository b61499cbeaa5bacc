//! The heartbeat rules, given a monitor's pings, when a ping or a wake-up
//! comes, then this state and effect.

use super::*;

fn monitor() -> Monitor {
    Monitor {
        name: "nightly-etl".into(),
        period: Duration::from_millis(1_000),
        grace: Duration::from_millis(250),
        severity: Severity::P2,
        team: "data".into(),
        workflow: "etl-nightly".into(),
        template: "agent_failure".into(),
        alert_if_never_pinged: false,
    }
}

fn t(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::milliseconds(ms)
}

fn ping(status: PingStatus, message: Option<&str>) -> Ping {
    Ping {
        status,
        message: message.map(String::from),
    }
}

/// Folds `(status, seq, at_ms)` pings into a state.
fn given(m: &Monitor, pings: &[(PingStatus, u64, i64)]) -> MonitorState {
    let mut s = MonitorState::default();
    for (status, seq, at) in pings {
        on_ping(m, &mut s, &ping(*status, None), *seq, t(*at));
    }
    s
}

#[test]
fn bodies_parse_empty_as_ok_and_refuse_anything_else_with_a_reason() {
    assert_eq!(parse_ping(b"").unwrap(), Ping::default());
    assert_eq!(parse_ping(b" \n").unwrap().status, PingStatus::Ok);
    let p = parse_ping(br#"{"status":"fail","message":"disk full"}"#).unwrap();
    assert_eq!(p, ping(PingStatus::Fail, Some("disk full")));
    assert_eq!(
        parse_ping(br#"{"status":"start"}"#).unwrap().status,
        PingStatus::Start
    );
    for bad in [
        &b"ok"[..],
        br#"{"status":"done"}"#,
        br#"{"stat":"ok"}"#,
        br#"[1]"#,
    ] {
        let err = parse_ping(bad).unwrap_err();
        assert_eq!(err.code(), "invalid_body", "{err}");
    }
    let big = vec![b' '; MAX_PING_BYTES + 1];
    assert_eq!(parse_ping(&big).unwrap_err(), PingError::TooLarge);
    let long = format!(r#"{{"status":"fail","message":"{}"}}"#, "é".repeat(1000));
    let p = parse_ping(long.as_bytes()).unwrap();
    assert!(p.message.unwrap().len() <= 1024);
}

#[test]
fn a_monitor_never_pinged_has_no_deadline_unless_configured_to_alert() {
    let mut m = monitor();
    let s = MonitorState::default();
    assert_eq!(deadline(&m, &s, t(0)), None);
    assert_eq!(on_deadline(&m, &s, t(0), t(99_000)), Due::NotYet(None));
    m.alert_if_never_pinged = true;
    assert_eq!(deadline(&m, &s, t(0)), Some(t(1_250)));
}

#[test]
fn the_deadline_is_the_last_ok_plus_period_plus_grace_to_the_millisecond() {
    let m = monitor();
    let s = given(&m, &[(PingStatus::Ok, 3, 10), (PingStatus::Ok, 7, 900)]);
    assert_eq!(deadline(&m, &s, t(0)), Some(t(2_150)));
    assert_eq!(
        on_deadline(&m, &s, t(0), t(2_149)),
        Due::NotYet(Some(t(2_150)))
    );
    assert!(matches!(
        on_deadline(&m, &s, t(0), t(2_150)),
        Due::Missed { outage_seq: 7, .. }
    ));
}

#[test]
fn start_and_fail_pings_do_not_move_the_deadline_but_count_as_pinged() {
    let m = monitor();
    let s = given(&m, &[(PingStatus::Start, 1, 100)]);
    assert_eq!(
        deadline(&m, &s, t(0)),
        Some(t(1_350)),
        "from the first ping"
    );
    let s = given(
        &m,
        &[
            (PingStatus::Ok, 1, 0),
            (PingStatus::Start, 2, 500),
            (PingStatus::Fail, 3, 600),
        ],
    );
    assert_eq!(deadline(&m, &s, t(0)), Some(t(1_250)));
}

#[test]
fn a_miss_opens_the_outage_named_by_the_last_ok_with_a_generated_packet() {
    let m = monitor();
    let s = given(&m, &[(PingStatus::Ok, 4, 0), (PingStatus::Start, 5, 100)]);
    let Due::Missed { outage_seq, report } = on_deadline(&m, &s, t(0), t(5_000)) else {
        panic!("due")
    };
    assert_eq!(outage_seq, 4);
    assert_eq!(
        m.outage_id(4),
        keyed_handoff_id("agent_failure", "heartbeat:nightly-etl:4")
    );
    let p = &report.packet;
    assert_eq!(p.objective.as_deref(), Some("heartbeat nightly-etl"));
    assert_eq!(p.failure_class.as_deref(), Some(MISSED));
    assert_eq!(p.workflow_id.as_deref(), Some("etl-nightly"));
    let summary = p.error_summary.as_deref().unwrap();
    assert!(
        summary.contains("last seen 2027-01-15T08:00:00.100Z (start)"),
        "{summary}"
    );
    assert!(
        summary.contains("expected by 2027-01-15T08:00:01.250Z"),
        "{summary}"
    );
    assert_eq!(report.severity, Severity::P2);
    assert_eq!(report.team.as_deref(), Some("data"));
    assert_eq!(report.dedup_key.as_deref(), Some("heartbeat:nightly-etl:4"));
    // The id the report would get through any intake is the outage's.
    assert_eq!(
        crate::domain::handoff_id_for("agent_failure", &report),
        Some(m.outage_id(4))
    );
}

#[test]
fn a_fail_opens_the_current_outage_at_once_with_its_message() {
    let m = monitor();
    let mut s = given(&m, &[(PingStatus::Ok, 2, 0)]);
    let effect = on_ping(
        &m,
        &mut s,
        &ping(PingStatus::Fail, Some("exit 3")),
        9,
        t(300),
    );
    let Effect::Open { outage_seq, report } = effect else {
        panic!("{effect:?}")
    };
    assert_eq!(outage_seq, 2, "the same outage a miss would open");
    assert_eq!(report.packet.failure_class.as_deref(), Some(FAILED));
    assert!(report
        .packet
        .error_summary
        .as_deref()
        .unwrap()
        .ends_with(": exit 3"));
    assert_eq!(s.failing.as_ref().map(|f| f.0.seq), Some(9));
}

#[test]
fn an_ok_resolves_the_outage_it_ends_and_starts_a_new_one() {
    let m = monitor();
    let mut s = given(&m, &[(PingStatus::Ok, 2, 0), (PingStatus::Fail, 3, 10)]);
    let effect = on_ping(&m, &mut s, &ping(PingStatus::Ok, None), 8, t(5_000));
    assert_eq!(
        effect,
        Effect::Resolve {
            outage_seq: 2,
            note: "heartbeat nightly-etl ok again".into()
        }
    );
    assert_eq!(s.last_ok_seq(), 8);
    assert_eq!(s.failing, None);
    assert_eq!(deadline(&m, &s, t(0)), Some(t(6_250)));
    assert_ne!(m.outage_id(8), m.outage_id(2));
}

#[test]
fn timer_ids_are_per_monitor_and_never_a_handoff_id() {
    let m = monitor();
    assert_eq!(m.timer_id(), timer_id("nightly-etl"));
    assert_ne!(timer_id("a"), timer_id("b"));
    assert_ne!(m.timer_id(), m.outage_id(0));
}
