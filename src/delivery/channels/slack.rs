//! `slack`: an incoming-webhook message, `text` (the notification and the
//! fallback) and Block Kit `blocks`: severity, summary, team, HCS, the
//! deadline, who else is paged, and link buttons when links are configured
//! (acknowledge/resolve, or accept/complete for a team handoff). Slack's answers: 200 `ok` delivered; 400
//! `invalid_payload`, 403, 404 `channel_not_found`, 410
//! `channel_is_archived` permanent (the body's code is the reason); 429
//! waits for `Retry-After`; 5xx retried.

use serde_json::{json, Value};

use super::{classify_http, classify_request_error, headline, kind_words, retry_after};
use super::{Attempt, Context};
use crate::pages::Page;

/// The message body (JSON), built without I/O.
pub fn build(page: &Page, cx: &Context) -> Value {
    let title = headline(page);
    let mention = cx
        .slack_member
        .as_deref()
        .map(|m| format!("<@{m}> "))
        .unwrap_or_default();
    let text = format!("{mention}{title} ({})", kind_words(page));
    let mut fields = vec![
        field("Severity", page.severity.as_str()),
        field("Team", &page.team),
        field("HCS", &format!("{:.2}", page.hcs.score)),
        field("Route", &format!("{} ({})", page.route, page.target)),
    ];
    if let Some(by) = page.respond_by.or(page.deadline) {
        fields.push(field(
            "Respond by",
            &format!(
                "<!date^{}^{{date_short_pretty}} {{time_secs}}|{}>",
                by.timestamp(),
                by.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        ));
    }
    if page.incomplete {
        fields.push(field("Packet", "incomplete (below the gate)"));
    }
    let mut what = Vec::new();
    if let Some(w) = &page.packet.workflow_id {
        what.push(format!(
            "*Workflow* `{w}`{}",
            page.packet
                .failing_step
                .as_deref()
                .map(|s| format!(" failed at `{s}`"))
                .unwrap_or_default()
        ));
    }
    if let Some(a) = &page.packet.recommended_action {
        what.push(format!("*Do* {a}"));
    }
    if let Some(r) = &page.packet.rollback_command {
        what.push(format!("*Rollback* `{r}`"));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&title, 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("{mention}{} for *{}*", kind_words(page), page.team)}, "fields": fields}),
    ];
    if !what.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&what.join("\n"), 3000)}}));
    }
    let also = if cx.also_paged.is_empty() {
        "Nobody else paged".to_string()
    } else {
        format!("Also paged: {}", cx.also_paged.join(", "))
    };
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": also},
        {"type": "mrkdwn", "text": format!("`{}`", page.ack.cli)},
    ]}));
    if let Some(l) = &cx.links {
        let buttons: Vec<Value> = l
            .0
            .iter()
            .enumerate()
            .map(|(i, link)| {
                let mut b = json!({"type": "button", "text": {"type": "plain_text", "text": link.action.label()}});
                // The first action is the main one (acknowledge, accept).
                if i == 0 {
                    b["style"] = json!("primary");
                }
                b["url"] = json!(link.url);
                b["action_id"] = json!(format!("baton_{}", link.action.as_str()));
                b
            })
            .collect();
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    json!({"text": text, "blocks": blocks})
}

fn field(name: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{name}*\n{value}")})
}

/// Slack caps text objects; cut on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// What Slack's answer means. A permanent refusal's reason is Slack's own
/// code (`channel_not_found`) when the body is one.
pub fn classify(status: u16, body: &str, retry: Option<std::time::Duration>) -> Attempt {
    match classify_http(status, retry) {
        Attempt::Permanent { reason } => {
            let code = body.trim();
            let is_code = !code.is_empty()
                && code.len() <= 64
                && code.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            Attempt::Permanent {
                reason: if is_code { code.to_string() } else { reason },
            }
        }
        other => other,
    }
}

/// Sends one attempt to an incoming webhook.
pub async fn send(http: &reqwest::Client, webhook_url: &str, body: &Value) -> Attempt {
    match http.post(webhook_url).json(body).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let after = retry_after(
                resp.headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
                chrono::Utc::now(),
            );
            let text = resp.text().await.unwrap_or_default();
            classify(status, &text, after)
        }
        Err(e) => classify_request_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block payload Slack is sent, pinned: Slack rejects a malformed
    /// one with `invalid_payload`, so a change here is checked against
    /// Block Kit's documented shape (header, section with `fields`,
    /// context, actions with link buttons). `UPDATE_GOLDEN=1` rewrites it.
    #[test]
    fn slack_blocks_match_their_golden_file() {
        let page = crate::delivery::testpage();
        let cx = Context {
            key: "k".into(),
            page_id: "p".into(),
            person: Some("alice".into()),
            slack_member: Some("U012AB3CD".into()),
            also_paged: vec!["incident_captain (incident_captain:payments)".into()],
            links: Some(super::super::Links(vec![
                super::super::Link {
                    action: crate::delivery::links::Action::Acknowledge,
                    url: "https://baton.example.com/a/ACK".into(),
                },
                super::super::Link {
                    action: crate::delivery::links::Action::Resolve,
                    url: "https://baton.example.com/a/RES".into(),
                },
            ])),
        };
        let got = serde_json::to_string_pretty(&build(&page, &cx)).unwrap() + "\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/delivery/slack_blocks.json");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
        assert_eq!(got, want);
        // Block Kit's shape, independently of the golden bytes.
        let v: Value = serde_json::from_str(&got).unwrap();
        assert!(v["text"]
            .as_str()
            .unwrap()
            .contains("[P1] payments: ledger API timed out"));
        let kinds: Vec<&str> = v["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["header", "section", "section", "context", "actions"]
        );
        assert_eq!(v["blocks"][0]["text"]["type"], "plain_text");
        assert!(v["blocks"][1]["fields"].as_array().unwrap().len() <= 10);
    }

    #[test]
    fn slack_answers_are_honoured() {
        assert_eq!(classify(200, "ok", None), Attempt::Delivered);
        for (s, body) in [
            (400, "invalid_payload"),
            (403, "action_prohibited"),
            (404, "channel_not_found"),
            (410, "channel_is_archived"),
        ] {
            assert_eq!(
                classify(s, body, None),
                Attempt::Permanent {
                    reason: body.into()
                }
            );
        }
        assert_eq!(
            classify(403, "<html>Forbidden</html>", None),
            Attempt::Permanent {
                reason: "http_403".into()
            }
        );
        assert!(matches!(
            classify(429, "rate_limited", Some(std::time::Duration::from_secs(1))),
            Attempt::Retry { after: Some(_), .. }
        ));
    }
}
