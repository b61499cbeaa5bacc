//! How the CLI shows the daemon's replies to a person: a few lines per
//! handoff (status, severity, team, who is paged or acknowledged, deadlines,
//! HCS) instead of the raw JSON, which `--json` keeps for scripts.

use serde_json::Value;

/// Text of a JSON string field, or `-`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// An RFC 3339 instant cut to seconds (`2026-11-28 09:40:41Z`).
fn instant(v: &Value) -> String {
    match v.as_str() {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_else(|_| s.to_string()),
        None => "-".into(),
    }
}

/// `by at` of a `{by, at}` stamp, if set.
fn stamp(v: &Value) -> Option<String> {
    v.is_object()
        .then(|| format!("{} at {}", text(&v["by"]), instant(&v["at"])))
}

/// Comma-separated strings of an array, or `none`.
fn names(v: &Value) -> String {
    let items: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// A handoff (`get`, a command's `handoff`) in a few lines.
pub(crate) fn handoff(h: &Value) -> Vec<String> {
    match h["kind"].as_str() {
        Some("team") => team(h),
        _ => incident(h),
    }
}

fn incident(h: &Value) -> Vec<String> {
    let mut lines = vec![format!(
        "{} {} {} team {} ({}, occurrence {})",
        text(&h["id"]),
        text(&h["severity"]),
        text(&h["status"]).to_uppercase(),
        text(&h["team"]),
        text(&h["template"]),
        text(&h["occurrence"]),
    )];
    let gate = &h["gate"];
    let mut hcs = format!(
        "HCS {:.1} (min {}), missing {}",
        h["hcs"]["score"].as_f64().unwrap_or_default(),
        text(&gate["min_hcs"]),
        names(&h["hcs"]["missing"])
    );
    if !gate["held"].is_null() {
        hcs.push_str(&format!("; held ({})", text(&gate["held"])));
        if !gate["hold_until"].is_null() {
            hcs.push_str(&format!(" until {}", instant(&gate["hold_until"])));
        }
    }
    if gate["incomplete"].as_bool() == Some(true) {
        hcs.push_str("; paged INCOMPLETE");
    }
    if let Some(o) = stamp(&gate["overridden"]) {
        hcs.push_str(&format!("; gate overridden by {o}"));
    }
    lines.push(hcs);
    let owners = &h["owners"];
    let paged = match h["paged_at"].as_str() {
        Some(_) => format!(
            "paged {}, escalation level {} ({} steps)",
            instant(&h["paged_at"]),
            text(&h["escalation"]["level"]),
            text(&h["escalation"]["steps"])
        ),
        None => "not paged".into(),
    };
    lines.push(format!(
        "owner {}, backup {}; {paged}",
        text(&owners["primary"]),
        text(&owners["backup"])
    ));
    let mut state = match stamp(&h["acknowledged"]) {
        Some(a) => match h["mtta_seconds"].as_f64() {
            Some(s) => format!("acknowledged by {a} (MTTA {s:.1}s)"),
            None => format!("acknowledged by {a}"),
        },
        None => format!(
            "respond by {}, next deadline {}",
            instant(&h["first_response_due"]),
            instant(&h["next_deadline"])
        ),
    };
    if let Some(r) = stamp(&h["resolved"]) {
        state.push_str(&format!("; resolved by {r}"));
    }
    if h["expired"].as_bool() == Some(true) {
        state.push_str("; packet expired");
    }
    lines.push(state);
    lines
}

fn team(h: &Value) -> Vec<String> {
    let mut lines = vec![
        format!(
            "{} {} {} → {} ({} v{})",
            text(&h["id"]),
            text(&h["status"]).to_uppercase(),
            text(&h["from_team"]),
            text(&h["to_team"]),
            text(&h["template"]),
            text(&h["template_version"]),
        ),
        format!(
            "completeness {:.1}, missing {}; started by {} at {}, returned {} times",
            h["completeness"]["score"].as_f64().unwrap_or_default(),
            names(&h["completeness"]["missing"]),
            text(&h["initiated_by"]),
            instant(&h["opened_at"]),
            text(&h["returns"]),
        ),
    ];
    let checklist = h["checklist"].as_array().cloned().unwrap_or_default();
    let checked = checklist
        .iter()
        .filter(|c| c["checked"].is_object())
        .count();
    let mut state = match stamp(&h["accepted"]) {
        Some(a) => format!(
            "accepted by {a}; complete by {}",
            instant(&h["complete_due"])
        ),
        None => format!("accept by {}", instant(&h["accept_due"])),
    };
    state.push_str(&format!("; checklist {checked}/{}", checklist.len()));
    for (key, what) in [("completed", "completed"), ("cancelled", "cancelled")] {
        if let Some(s) = stamp(&h[key]) {
            state.push_str(&format!("; {what} by {s}"));
        }
    }
    if h["rating"].is_object() {
        state.push_str(&format!("; rated {}", text(&h["rating"]["rating"])));
    }
    lines.push(state);
    lines
}

/// A command's reply (`{"ok", "handoff", "events", "seq"}`): what it
/// stored, then the handoff.
pub(crate) fn command_reply(verb: &str, reply: &Value) -> Vec<String> {
    let kinds: Vec<String> = reply["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| text(&e["type"]))
        .collect();
    let mut lines = vec![match reply["seq"].as_u64() {
        Some(seq) => format!("{verb}: stored {} (seq {seq})", kinds.join(", ")),
        None => format!("{verb}: nothing to store (already so)"),
    }];
    if !reply["handoff"].is_null() {
        lines.extend(handoff(&reply["handoff"]));
    }
    lines
}

/// One line per handoff of a `list` page.
pub(crate) fn list_line(h: &Value) -> String {
    match h["kind"].as_str() {
        Some("team") => format!(
            "{}  team      {:<12} {} → {}  completeness {:.1}  {}  next {}",
            text(&h["id"]),
            text(&h["status"]),
            text(&h["from_team"]),
            text(&h["to_team"]),
            h["completeness"]["score"].as_f64().unwrap_or_default(),
            text(&h["template"]),
            instant(&h["next_deadline"]),
        ),
        _ => format!(
            "{}  {:<9} {:<12} {:<12} HCS {:>5.1}  owner {}  next {}",
            text(&h["id"]),
            text(&h["severity"]),
            text(&h["status"]),
            text(&h["team"]),
            h["hcs"]["score"].as_f64().unwrap_or_default(),
            text(&h["owners"]["primary"]),
            instant(&h["next_deadline"]),
        ),
    }
}

/// Any other reply: its top-level fields, one per line (nested values as
/// compact JSON), without the `ok` every success carries.
pub(crate) fn fields(reply: &Value) -> Vec<String> {
    match reply.as_object() {
        Some(o) => o
            .iter()
            .filter(|(k, _)| k.as_str() != "ok")
            .map(|(k, v)| format!("{k}: {}", text(v)))
            .collect(),
        None => vec![text(reply)],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn incident_view() -> Value {
        json!({"kind": "incident", "id": "10e6a924-c747-56b8-817b-ff879ae18c29",
               "severity": "P1", "status": "acknowledged", "team": "payments",
               "template": "agent_failure", "occurrence": 1,
               "hcs": {"score": 100.0, "missing": []},
               "gate": {"min_hcs": 90.0, "held": null, "incomplete": false, "overridden": null},
               "owners": {"primary": "alice", "backup": "bob"},
               "paged_at": "2026-11-28T09:40:11.101212372Z",
               "escalation": {"level": 0, "steps": 0},
               "acknowledged": {"by": "alice", "at": "2026-11-28T09:40:12Z"},
               "mtta_seconds": 1.2, "resolved": null, "expired": false,
               "first_response_due": "2026-11-28T09:40:41Z", "next_deadline": null})
    }

    #[test]
    fn an_incident_shows_status_severity_team_owners_ack_and_hcs_in_four_lines() {
        let lines = handoff(&incident_view());
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert_eq!(
            lines[0],
            "10e6a924-c747-56b8-817b-ff879ae18c29 P1 ACKNOWLEDGED team payments (agent_failure, occurrence 1)"
        );
        assert_eq!(lines[1], "HCS 100.0 (min 90.0), missing none");
        assert_eq!(
            lines[2],
            "owner alice, backup bob; paged 2026-11-28 09:40:11Z, escalation level 0 (0 steps)"
        );
        assert_eq!(
            lines[3],
            "acknowledged by alice at 2026-11-28 09:40:12Z (MTTA 1.2s)"
        );
    }

    #[test]
    fn a_command_reply_names_what_it_stored() {
        let reply = json!({"ok": true, "seq": 7, "events": [{"type": "acknowledged"}],
                           "handoff": incident_view()});
        let lines = command_reply("ack", &reply);
        assert_eq!(lines[0], "ack: stored acknowledged (seq 7)");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn a_list_line_is_one_line() {
        let line = list_line(&incident_view());
        assert!(!line.contains('\n'));
        assert!(line.contains("P1") && line.contains("acknowledged") && line.contains("alice"));
    }
}
