//! Given a rotation (and stored events), when asked at an instant, then
//! this person. Instants are written in UTC; comments give local times.

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use proptest::prelude::*;

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn local(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
}

fn people(n: usize) -> Vec<String> {
    ["alice", "bob", "carol", "dave", "erin"][..n]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn rotation(tz: Tz, kind: RotationKind, len: u32, anchor: &str, n: usize) -> Rotation {
    Rotation {
        id: "r".into(),
        tz,
        kind,
        shift_length: len,
        anchor: local(anchor),
        participants: people(n),
    }
}

fn dir(r: Rotation) -> Directory {
    Directory::new(people(5), vec![r])
}

fn who(d: &Directory, at: &str) -> String {
    let t = utc(at);
    d.on_call("r", t, t).unwrap().person.unwrap()
}

use chrono_tz::America::New_York;
use chrono_tz::Europe::Berlin;
use chrono_tz::Tz;

#[test]
fn weekly_rotation_hands_over_at_the_anchor_wall_time() {
    // Given a weekly rotation from Monday 2026-11-02 09:00 Berlin (08:00Z).
    let d = dir(rotation(
        Berlin,
        RotationKind::Weekly,
        1,
        "2026-11-02T09:00:00",
        3,
    ));
    assert_eq!(who(&d, "2026-11-02T08:00:00Z"), "alice");
    assert_eq!(who(&d, "2026-11-09T07:59:59Z"), "alice");
    assert_eq!(who(&d, "2026-11-09T08:00:00Z"), "bob");
    assert_eq!(who(&d, "2026-11-16T08:00:00Z"), "carol");
    assert_eq!(who(&d, "2026-11-23T08:00:00Z"), "alice");
    // The backup is the next participant.
    let t = utc("2026-11-10T12:00:00Z");
    assert_eq!(
        d.on_call("r", t, t).unwrap().backup.as_deref(),
        Some("carol")
    );
}

#[test]
fn daily_rotation_keeps_09_00_across_berlin_spring_forward_and_fall_back() {
    // 2027-03-28: CET→CEST at 02:00. 2026-10-25: CEST→CET at 03:00.
    let d = dir(rotation(
        Berlin,
        RotationKind::Daily,
        1,
        "2027-03-26T09:00:00",
        2,
    ));
    assert_eq!(who(&d, "2027-03-27T07:59:59Z"), "alice"); // 08:59 CET
    assert_eq!(who(&d, "2027-03-27T08:00:00Z"), "bob"); // 09:00 CET
    assert_eq!(who(&d, "2027-03-28T06:59:59Z"), "bob"); // 08:59 CEST
    assert_eq!(who(&d, "2027-03-28T07:00:00Z"), "alice"); // 09:00 CEST
    let d = dir(rotation(
        Berlin,
        RotationKind::Daily,
        1,
        "2026-10-23T09:00:00",
        2,
    ));
    assert_eq!(who(&d, "2026-10-24T07:00:00Z"), "bob"); // 09:00 CEST
    assert_eq!(who(&d, "2026-10-25T07:59:59Z"), "bob"); // 08:59 CET
    assert_eq!(who(&d, "2026-10-25T08:00:00Z"), "alice"); // 09:00 CET
}

#[test]
fn weekly_rotation_keeps_its_wall_time_across_new_york_dst() {
    // 2027-03-14 EST→EDT, 2026-11-01 EDT→EST. Sunday 10:00 handoffs.
    let d = dir(rotation(
        New_York,
        RotationKind::Weekly,
        1,
        "2027-03-07T10:00:00",
        2,
    ));
    assert_eq!(who(&d, "2027-03-14T13:59:59Z"), "alice"); // 09:59 EDT
    assert_eq!(who(&d, "2027-03-14T14:00:00Z"), "bob"); // 10:00 EDT
    let d = dir(rotation(
        New_York,
        RotationKind::Weekly,
        1,
        "2026-10-25T10:00:00",
        2,
    ));
    assert_eq!(who(&d, "2026-11-01T14:59:59Z"), "alice"); // 09:59 EST
    assert_eq!(who(&d, "2026-11-01T15:00:00Z"), "bob"); // 10:00 EST
}

#[test]
fn nonexistent_and_ambiguous_handoff_times_map_the_same_way_every_time() {
    // 02:30 does not exist on 2027-03-28 in Berlin: read with the old
    // offset, it is 01:30Z (03:30 CEST).
    let t = local_to_utc(Berlin, local("2027-03-28T02:30:00"));
    assert_eq!(t, utc("2027-03-28T01:30:00Z"));
    // 02:30 happens twice on 2026-10-25: the first one (CEST, 00:30Z).
    let t = local_to_utc(Berlin, local("2026-10-25T02:30:00"));
    assert_eq!(t, utc("2026-10-25T00:30:00Z"));
    // A daily 02:30 rotation still has exactly one shift per day there.
    let r = rotation(Berlin, RotationKind::Daily, 1, "2027-03-26T02:30:00", 2);
    let s = r.shift_at(utc("2027-03-28T01:45:00Z")).unwrap();
    assert_eq!(s.index, 2);
    assert_eq!(s.start, utc("2027-03-28T01:30:00Z"));
    assert_eq!(s.end, utc("2027-03-29T00:30:00Z"));
}

#[test]
fn hourly_shifts_are_real_hours_and_shift_length_counts_units() {
    // Across the Berlin fall-back night, 3-hour shifts stay 3 real hours.
    let r = rotation(Berlin, RotationKind::Hourly, 3, "2026-10-25T00:00:00", 3);
    let s = r.shift_at(utc("2026-10-25T01:30:00Z")).unwrap();
    assert_eq!((s.index, s.end - s.start), (1, chrono::Duration::hours(3)));
    let d = dir(r);
    assert_eq!(who(&d, "2026-10-24T22:00:00Z"), "alice");
    assert_eq!(who(&d, "2026-10-25T01:00:00Z"), "bob");
    assert_eq!(who(&d, "2026-10-25T04:00:00Z"), "carol");
    // Two-day daily shifts.
    let d = dir(rotation(
        chrono_tz::UTC,
        RotationKind::Daily,
        2,
        "2026-01-01T00:00:00",
        2,
    ));
    assert_eq!(who(&d, "2026-01-02T23:00:00Z"), "alice");
    assert_eq!(who(&d, "2026-01-03T00:00:00Z"), "bob");
}

#[test]
fn an_anchor_in_the_future_counts_backwards() {
    let d = dir(rotation(
        chrono_tz::UTC,
        RotationKind::Daily,
        1,
        "2030-01-10T00:00:00",
        3,
    ));
    // One day before the anchor: shift -1, the last participant.
    assert_eq!(who(&d, "2030-01-09T12:00:00Z"), "carol");
    assert_eq!(who(&d, "2030-01-08T12:00:00Z"), "bob");
    assert_eq!(who(&d, "2030-01-10T00:00:00Z"), "alice");
}

fn event(at: &str, data: OncallEventData) -> OncallEvent {
    OncallEvent {
        id: Uuid::now_v7(),
        version: ONCALL_EVENT_VERSION,
        occurred_at: utc(at),
        actor: "lead".into(),
        rotation: "r".into(),
        data,
    }
}

fn created(
    id: u128,
    at: &str,
    replaces: Option<&str>,
    by: &str,
    from: &str,
    until: &str,
) -> OncallEvent {
    event(
        at,
        OncallEventData::OverrideCreated {
            override_id: Uuid::from_u128(id),
            replaces: replaces.map(String::from),
            by: by.into(),
            from: utc(from),
            until: utc(until),
        },
    )
}

#[test]
fn the_latest_created_covering_override_wins_and_expired_ones_are_ignored() {
    let mut d = dir(rotation(
        chrono_tz::UTC,
        RotationKind::Weekly,
        1,
        "2026-01-05T00:00:00",
        3,
    ));
    // Given alice's week (5th–12th), dave takes the 6th, then erin the 6th noon–18h.
    d.apply(&created(
        1,
        "2026-01-01T00:00:00Z",
        None,
        "dave",
        "2026-01-06T00:00:00Z",
        "2026-01-07T00:00:00Z",
    ));
    d.apply(&created(
        2,
        "2026-01-02T00:00:00Z",
        None,
        "erin",
        "2026-01-06T12:00:00Z",
        "2026-01-06T18:00:00Z",
    ));
    // And an override replacing bob, who is not on call then: no effect.
    d.apply(&created(
        3,
        "2026-01-03T00:00:00Z",
        Some("bob"),
        "carol",
        "2026-01-06T00:00:00Z",
        "2026-01-14T00:00:00Z",
    ));
    assert_eq!(who(&d, "2026-01-05T23:59:59Z"), "alice");
    assert_eq!(who(&d, "2026-01-06T06:00:00Z"), "dave");
    assert_eq!(who(&d, "2026-01-06T13:00:00Z"), "erin");
    assert_eq!(who(&d, "2026-01-06T18:00:00Z"), "dave");
    assert_eq!(who(&d, "2026-01-07T00:00:00Z"), "alice", "expired");
    // Bob's week: the override replacing bob applies.
    assert_eq!(who(&d, "2026-01-12T06:00:00Z"), "carol");
    assert_eq!(who(&d, "2026-01-14T00:00:00Z"), "bob");
}

#[test]
fn an_override_made_after_an_instant_is_not_believed_when_asking_as_of_then() {
    let mut d = dir(rotation(
        chrono_tz::UTC,
        RotationKind::Daily,
        1,
        "2026-01-01T00:00:00",
        2,
    ));
    d.apply(&created(
        1,
        "2026-01-01T12:00:00Z",
        None,
        "dave",
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
    ));
    let t = utc("2026-01-01T02:13:00Z");
    assert_eq!(
        d.on_call("r", t, t).unwrap().person.as_deref(),
        Some("alice")
    );
    let now = utc("2026-01-05T00:00:00Z");
    assert_eq!(
        d.on_call("r", t, now).unwrap().person.as_deref(),
        Some("dave")
    );
    // Cancelled: from its cancellation on it no longer counts.
    d.apply(&event(
        "2026-01-03T00:00:00Z",
        OncallEventData::OverrideCancelled {
            override_id: Uuid::from_u128(1),
            reason: None,
        },
    ));
    assert_eq!(
        d.on_call("r", t, now).unwrap().person.as_deref(),
        Some("alice")
    );
    let before = utc("2026-01-02T00:00:00Z");
    assert_eq!(
        d.on_call("r", t, before).unwrap().person.as_deref(),
        Some("dave")
    );
}

#[test]
fn a_participant_change_takes_effect_for_the_future_only() {
    let mut d = dir(rotation(
        chrono_tz::UTC,
        RotationKind::Daily,
        1,
        "2026-01-01T00:00:00",
        2,
    ));
    let change = event(
        "2026-01-03T00:00:00Z",
        OncallEventData::ParticipantsChanged {
            participants: vec!["carol".into(), "dave".into(), "erin".into()],
            effective: utc("2026-01-04T00:00:00Z"),
        },
    );
    // The change decided now but effective tomorrow is accepted; one in the past is not.
    let cmd = |eff: &str| OncallCommand::ChangeParticipants {
        rotation: "r".into(),
        participants: people(3),
        effective: utc(eff),
    };
    assert!(d
        .decide(&cmd("2026-01-04T00:00:00Z"), utc("2026-01-03T00:00:00Z"))
        .is_ok());
    assert!(matches!(
        d.decide(&cmd("2026-01-02T00:00:00Z"), utc("2026-01-03T00:00:00Z")),
        Err(OncallError::Invalid { .. })
    ));
    d.apply(&change);
    assert_eq!(who(&d, "2026-01-03T12:00:00Z"), "alice"); // shift 2 of [alice, bob]
                                                          // Shift 3 of [carol, dave, erin] counted from the anchor: carol.
    assert_eq!(who(&d, "2026-01-04T12:00:00Z"), "carol");
    assert_eq!(who(&d, "2026-01-05T12:00:00Z"), "dave");
    assert_eq!(
        who(&d, "2026-01-01T12:00:00Z"),
        "alice",
        "the past is unchanged"
    );
}

#[test]
fn targets_resolve_rotations_people_owner_and_keep_labels_opaque() {
    let d = dir(rotation(
        chrono_tz::UTC,
        RotationKind::Weekly,
        1,
        "2026-01-05T00:00:00",
        2,
    ));
    let t = utc("2026-01-06T00:00:00Z");
    assert_eq!(
        d.resolve("rotation:r", None, None, t),
        Resolution::Person {
            person: "alice".into(),
            backup: Some("bob".into()),
            rotation: Some("r".into())
        }
    );
    assert!(
        matches!(d.resolve("person:dave", None, None, t), Resolution::Person { person, .. } if person == "dave")
    );
    assert!(matches!(
        d.resolve("person:zed", None, None, t),
        Resolution::Nobody(_)
    ));
    assert!(matches!(
        d.resolve("rotation:zz", None, None, t),
        Resolution::Nobody(_)
    ));
    assert_eq!(d.resolve("rota:primary", None, None, t), Resolution::Label);
    assert!(matches!(
        d.resolve("owner", Some("rotation:r"), None, t),
        Resolution::Person { person, .. } if person == "alice"
    ));
    assert_eq!(
        d.resolve("owner", Some("alice"), None, t),
        Resolution::Label
    );
    assert!(matches!(
        d.resolve("backup", None, None, t),
        Resolution::Nobody(_)
    ));
    assert!(d.target_problem("rotation:nope").is_some());
    assert!(d.target_problem("rota:primary").is_none());
}

#[test]
fn override_commands_are_checked() {
    let d = dir(rotation(
        chrono_tz::UTC,
        RotationKind::Weekly,
        1,
        "2026-01-05T00:00:00",
        2,
    ));
    let now = utc("2026-01-06T00:00:00Z");
    let cmd = |rot: &str, by: &str, from: &str, until: &str| OncallCommand::CreateOverride {
        id: Uuid::from_u128(9),
        rotation: rot.into(),
        replaces: None,
        by: by.into(),
        from: utc(from),
        until: utc(until),
    };
    assert!(d
        .decide(
            &cmd("r", "dave", "2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z"),
            now
        )
        .is_ok());
    assert!(matches!(
        d.decide(
            &cmd("x", "dave", "2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z"),
            now
        ),
        Err(OncallError::UnknownRotation(_))
    ));
    assert!(d
        .decide(
            &cmd("r", "zed", "2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z"),
            now
        )
        .is_err());
    assert!(d
        .decide(
            &cmd("r", "dave", "2026-01-07T00:00:00Z", "2026-01-06T00:00:00Z"),
            now
        )
        .is_err());
    let cancel = OncallCommand::CancelOverride {
        id: Uuid::from_u128(9),
        reason: None,
    };
    assert_eq!(
        d.decide(&cancel, now),
        Err(OncallError::UnknownOverride(Uuid::from_u128(9)))
    );
}

fn kind() -> impl Strategy<Value = RotationKind> {
    prop_oneof![
        Just(RotationKind::Hourly),
        Just(RotationKind::Daily),
        Just(RotationKind::Weekly)
    ]
}

fn zone() -> impl Strategy<Value = Tz> {
    prop_oneof![
        Just(Berlin),
        Just(New_York),
        Just(chrono_tz::UTC),
        Just(chrono_tz::Australia::Lord_Howe)
    ]
}

proptest! {
    /// Exactly one shift holds any instant: it contains the instant, its
    /// neighbours start and end where it does, and exactly one person is
    /// on call (overrides or not).
    #[test]
    fn exactly_one_person_is_on_call_at_any_instant(
        tz in zone(),
        k in kind(),
        len in 1u32..5,
        n in 1usize..5,
        anchor_day in 0i64..3000,
        anchor_min in 0u32..1440,
        offset_min in -2_000_000i64..2_000_000,
        over in proptest::option::of((0i64..20_000, 1i64..5_000, 1usize..5)),
    ) {
        let anchor = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap()
            + chrono::Duration::days(anchor_day)
            + chrono::Duration::minutes(i64::from(anchor_min));
        let r = Rotation { id: "r".into(), tz, kind: k, shift_length: len, anchor, participants: people(n) };
        let t = r.anchor_utc() + chrono::Duration::minutes(offset_min);
        let s = r.shift_at(t).expect("in range");
        prop_assert!(s.start <= t && t < s.end);
        prop_assert_eq!(r.boundary(s.index + 1), Some(s.end));
        prop_assert!(r.shift_at(s.end).unwrap().index == s.index + 1);
        prop_assert!(r.shift_at(s.start).unwrap().index == s.index);
        if k != RotationKind::Hourly {
            // The handoff is at the anchor's wall time whenever that time
            // exists once on the handoff's local date.
            let start = s.start.with_timezone(&tz).naive_local();
            let intended = start.date().and_time(anchor.time());
            if tz.from_local_datetime(&intended).single().is_some() {
                prop_assert_eq!(start.time(), anchor.time());
            }
        }
        let mut d = Directory::new(people(5), vec![r]);
        if let Some((from, len, by)) = over {
            let from = t - chrono::Duration::minutes(from / 2) + chrono::Duration::minutes(from / 4);
            d.apply(&OncallEvent {
                id: Uuid::now_v7(), version: 1, occurred_at: t, actor: "x".into(), rotation: "r".into(),
                data: OncallEventData::OverrideCreated {
                    override_id: Uuid::now_v7(), replaces: None, by: people(5)[by].clone(),
                    from, until: from + chrono::Duration::minutes(len),
                },
            });
        }
        let oc = d.on_call("r", t, t).unwrap();
        prop_assert!(oc.person.is_some());
        let list = people(n);
        prop_assert_eq!(oc.scheduled.as_ref(), pick(&list, s.index));
    }
}

#[test]
fn a_notice_gets_people_and_a_target_resolving_to_nobody_pages_the_fallback() {
    use crate::domain::{Route, RouteTarget};
    let mut d = dir(rotation(
        chrono_tz::UTC,
        RotationKind::Weekly,
        1,
        "2026-01-05T00:00:00",
        2,
    ));
    // Given everyone on the rotation overridden away to a person not in
    // [people]… which decide refuses; so an empty participant list instead.
    d.rotations
        .get_mut("r")
        .unwrap()
        .rotation
        .participants
        .clear();
    let mut policy = crate::domain::testkit::policy();
    policy.routes.insert(
        "oncall".into(),
        Route {
            target: "rotation:r".into(),
            fallback: Some("person:erin".into()),
        },
    );
    let mut notice: crate::domain::Notice = serde_json::from_value(serde_json::json!({
        "routes": [], "team": "payments", "severity": "P1", "template": "agent_failure",
        "hcs": {"score": 100.0, "context": 100, "ownership": 100, "next_action": 100,
                "reproducibility": 100, "missing": []},
        "packet": {"owner": {"primary": "alice"}}, "incomplete": false
    }))
    .unwrap();
    notice.routes = vec![
        RouteTarget::new("oncall", "rotation:r"),
        RouteTarget::new("owner", "alice"),
        RouteTarget::new("x", "person:dave"),
    ];
    let n = d.resolve_notice(&mut notice, &policy, utc("2026-01-06T00:00:00Z"));
    assert_eq!(n, 1);
    let r = &notice.routes;
    assert!(r[0].unresolved);
    assert_eq!(r[0].person.as_deref(), Some("erin"));
    assert_eq!(
        r[1],
        RouteTarget::new("owner", "alice"),
        "labels stay labels"
    );
    assert_eq!(r[2].person.as_deref(), Some("dave"));
}
