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

use crate::domain::{Event, Hcs, Packet, Severity};

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
}

/// How to acknowledge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckHow {
    /// NATS request subject; body `{"id": "...", "by": "you"}`.
    pub nats: String,
    pub cli: String,
    pub http: String,
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
            };
            (
                names.page(&rt.route, &notice.team),
                format!("{}:{}", event.id, rt.route),
                page,
            )
        })
        .collect()
}
