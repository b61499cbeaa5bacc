//! The page: the JSON message a notice-carrying event becomes on
//! `<prefix>.page.<route>.<team>` (`BATON_PAGES`), and [`pages_for`], the
//! pure derivation of an event's pages. Paging consumers (rotas, chat
//! bridges, `baton pages`) read this shape; the publisher task that sends
//! pages exactly once is `pages`.
//!
//! It has no version field: consumers outside Baton parse it, so its shape
//! only grows (a new optional field), never renames or drops one. A page's
//! `Nats-Msg-Id` is `<event id>:<route>`, so the same event always derives
//! the same pages under the same ids.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Event, Hcs, Notice, Packet, Severity};

/// The subjects a page names: where it is published and where it is
/// answered. `store::Names` provides them under the configured prefix (the
/// store sits above this module, so the derivation asks for them).
pub trait PageSubjects {
    /// `<prefix>.page.<route>.<team>`: where the page is published.
    fn page(&self, route: &str, team: &str) -> String;
    /// `<prefix>.cmd.<verb>`: the NATS request that answers it.
    fn cmd(&self, verb: &str) -> String;
}

/// The page payload (the paging consumers' contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// `page` (level 0), `escalation`, `ticket` (gate hold on the owner
    /// queue) or `refresh` (packet TTL expired).
    pub kind: String,
    pub handoff_id: Uuid,
    /// The causing event.
    pub event_id: Uuid,
    pub severity: Severity,
    /// 0 for the first page, then the escalation level.
    pub level: u32,
    /// Escalation step (0 for non-escalations).
    pub step: u32,
    pub route: String,
    pub team: String,
    /// Who this route reaches.
    pub target: String,
    /// The person `target` resolved to when the event was decided (the
    /// on-call person of a `rotation:` target, or the route's fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// That rotation's backup at the same instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// The rotation `person` was on call for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<String>,
    /// `target` resolved to nobody: `person` is the route's fallback.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unresolved: bool,
    pub template: String,
    pub hcs: Hcs,
    /// Below the severity's HCS gate.
    pub incomplete: bool,
    pub packet: Packet,
    /// The SLA deadline this page enforces (escalations, refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// Acknowledge before this or the next step fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond_by: Option<DateTime<Utc>>,
    pub sent_at: DateTime<Utc>,
    pub ack: AckHow,
    /// Team handoffs: template version, teams, fields, checklist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<crate::domain::WorkNotice>,
    /// The other routes the same event paged, as `<route> (<target>)` in
    /// the notice's order (empty: nobody else). Absent from pages derived
    /// before the field existed; the delivery worker then reads the
    /// handoff's log for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub also_paged: Option<Vec<String>>,
}

/// How to acknowledge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckHow {
    /// NATS request subject; body `{"id": "...", "by": "you"}`.
    pub nats: String,
    pub cli: String,
    pub http: String,
}

/// The routes `notice` paged besides `route`, as `<route> (<target>)`.
pub fn also_paged(notice: &Notice, route: &str) -> Vec<String> {
    notice
        .routes
        .iter()
        .filter(|r| r.route != route)
        .map(|r| format!("{} ({})", r.route, r.target))
        .collect()
}

/// The pages an event causes, with their subjects and message ids.
pub fn pages_for(event: &Event, names: &impl PageSubjects) -> Vec<(String, String, Page)> {
    let Some((kind, notice)) = event.data.notice() else {
        return vec![];
    };
    let (level, step, deadline) = match &event.data {
        crate::domain::EventData::Escalated {
            level,
            step,
            deadline,
            ..
        } => (*level, *step, Some(*deadline)),
        crate::domain::EventData::Expired { deadline, .. } => (0, 0, Some(*deadline)),
        crate::domain::EventData::SlaMissed { deadline, .. } => (1, 0, Some(*deadline)),
        _ => (0, 0, None),
    };
    let id = event.handoff_id;
    notice
        .routes
        .iter()
        .map(|rt| {
            let page = Page {
                kind: kind.to_string(),
                handoff_id: id,
                event_id: event.id,
                severity: notice.severity,
                level,
                step,
                route: rt.route.clone(),
                team: notice.team.clone(),
                target: rt.target.clone(),
                person: rt.person.clone(),
                backup: rt.backup.clone(),
                rotation: rt.rotation.clone(),
                unresolved: rt.unresolved,
                template: notice.template.clone(),
                hcs: notice.hcs.clone(),
                incomplete: notice.incomplete,
                packet: notice.packet.clone(),
                deadline,
                respond_by: notice.respond_by,
                sent_at: event.occurred_at,
                ack: match notice.work {
                    // A returned handoff is answered by resubmitting it.
                    Some(_) if kind == "returned" => AckHow {
                        nats: names.cmd("resubmit"),
                        cli: format!(
                            "baton handoff resubmit {id} --by <you> --field <name>=<value>"
                        ),
                        http: format!("POST /v1/handoffs/{id}/resubmit"),
                    },
                    // Team handoffs are taken by accepting them.
                    Some(_) => AckHow {
                        nats: names.cmd("accept"),
                        cli: format!("baton handoff accept {id} --by <you>"),
                        http: format!("POST /v1/handoffs/{id}/accept"),
                    },
                    None => AckHow {
                        nats: names.cmd("ack"),
                        cli: format!("baton ack {id} --by <you>"),
                        http: format!("POST /v1/handoffs/{id}/ack"),
                    },
                },
                work: notice.work.clone(),
                also_paged: Some(also_paged(notice, &rt.route)),
            };
            (
                names.page(&rt.route, &notice.team),
                format!("{}:{}", event.id, rt.route),
                page,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Commit;

    /// The golden file: every page the recorded events of
    /// `tests/fixtures/*.jsonl` derive, one per line, as published.
    const GOLDEN: &str = "tests/fixtures/pages/from_recorded_events.jsonl";

    /// Each page the recorded events derive under the prefix `baton`: its
    /// subject, its `Nats-Msg-Id` and its body's bytes as published.
    fn derived_from_recorded_events() -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(root.join("tests/fixtures"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        // The store's names: the subjects are part of what consumers read.
        let names = crate::store::Names::new("baton");
        let mut out = String::new();
        for path in files {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let commit: Commit = serde_json::from_str(&format!("{{\"events\":[{line}]}}"))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                for (subject, msg_id, page) in pages_for(&commit.events[0], &names) {
                    out.push_str(&format!(
                        "{{\"subject\":{},\"msg_id\":{},\"page\":{}}}\n",
                        serde_json::to_string(&subject).unwrap(),
                        serde_json::to_string(&msg_id).unwrap(),
                        serde_json::to_string(&page).unwrap(),
                    ));
                }
            }
        }
        out
    }

    /// Golden: paging consumers outside Baton parse these bytes, so the
    /// pages that recorded events derive stay what they were: subject,
    /// message id and body. A new optional field is an intended change
    /// (`UPDATE_GOLDEN=1` rewrites the file); a renamed or dropped one is a
    /// break for every consumer.
    #[test]
    fn pages_derived_from_recorded_events_match_their_golden_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
        let derived = derived_from_recorded_events();
        assert!(derived.lines().count() >= 10, "{derived}");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &derived).unwrap();
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{GOLDEN}: {e} (UPDATE_GOLDEN=1 writes it from today's code)")
        });
        for (n, (got, want)) in derived.lines().zip(golden.lines()).enumerate() {
            assert_eq!(got, want, "{GOLDEN}:{}", n + 1);
        }
        assert_eq!(derived.lines().count(), golden.lines().count(), "{GOLDEN}");
    }
}
