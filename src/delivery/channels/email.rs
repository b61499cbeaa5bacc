//! `email`: a message through an SMTP relay (`[delivery.smtp]`; STARTTLS,
//! TLS or plain for a local relay; credentials from `BATON_SMTP_USER` and
//! `BATON_SMTP_PASSWORD`), with a text and an HTML part and a subject that
//! sorts in a mail client: `[P1] payments: ledger API timed out`.
//!
//! The `Message-ID` is derived from the idempotency key, so a retried or
//! re-sent mail is recognisably the same one.

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{headline, kind_words, Attempt, Context};
use crate::config::{SmtpConfig, SmtpSecurity};
use crate::pages::Page;

/// A mail's parts, built without I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `<…@baton>`, from the idempotency key.
    pub message_id: String,
}

/// The mail for `page`.
pub fn build(page: &Page, cx: &Context) -> Mail {
    let subject = headline(page);
    let mut lines = vec![
        format!("{} for team {}", kind_words(page), page.team),
        String::new(),
        format!("Severity:  {}", page.severity.as_str()),
        format!(
            "HCS:       {:.2}{}",
            page.hcs.score,
            if page.incomplete {
                " (incomplete packet)"
            } else {
                ""
            }
        ),
        format!("Route:     {} ({})", page.route, page.target),
    ];
    if let Some(by) = page.respond_by.or(page.deadline) {
        lines.push(format!("Respond by {}", by.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    let p = &page.packet;
    for (name, v) in [
        ("Workflow", &p.workflow_id),
        ("Failing step", &p.failing_step),
        ("Error", &p.error_summary),
        ("Do", &p.recommended_action),
        ("Rollback", &p.rollback_command),
    ] {
        if let Some(v) = v {
            lines.push(format!("{name}: {v}"));
        }
    }
    lines.push(String::new());
    if !cx.also_paged.is_empty() {
        lines.push(format!("Also paged: {}", cx.also_paged.join(", ")));
    }
    if let Some(l) = &cx.links {
        for link in &l.0 {
            lines.push(format!(
                "{:<12} {}",
                format!("{}:", link.action.label()),
                link.url
            ));
        }
    }
    lines.push(format!("Acknowledge from a shell: {}", page.ack.cli));
    lines.push(format!("Handoff {}", page.handoff_id));
    let text = lines.join("\n") + "\n";
    let html = format!(
        "<!doctype html><html><body><h2>{}</h2><pre style=\"font-family:monospace\">{}</pre></body></html>\n",
        escape(&subject),
        escape(&text)
    );
    Mail {
        subject,
        text,
        html,
        message_id: format!("<{}@baton>", cx.key.replace(':', ".")),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The relay connection, built once per worker.
pub fn transport(
    cfg: &SmtpConfig,
    timeout: std::time::Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = match cfg.security {
        SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
            .map_err(|e| e.to_string())?,
        SmtpSecurity::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host).map_err(|e| e.to_string())?
        }
        SmtpSecurity::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
    };
    let mut builder = builder.port(cfg.port).timeout(Some(timeout));
    if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    Ok(builder.build())
}

/// Sends one attempt.
pub async fn send(
    smtp: &AsyncSmtpTransport<Tokio1Executor>,
    from: &str,
    to: &str,
    mail: Mail,
) -> Attempt {
    let permanent = |reason: &str| Attempt::Permanent {
        reason: reason.into(),
    };
    let (Ok(from), Ok(to)) = (from.parse::<Mailbox>(), to.parse::<Mailbox>()) else {
        return permanent("bad_address");
    };
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject)
        .message_id(Some(mail.message_id))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(mail.text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(mail.html),
                ),
        );
    let message = match message {
        Ok(m) => m,
        Err(_) => return permanent("bad_message"),
    };
    match smtp.send(message).await {
        Ok(_) => Attempt::Delivered,
        Err(e) if e.is_permanent() => permanent(&format!(
            "smtp_{}",
            e.status()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "5xx".into())
        )),
        Err(e) => Attempt::Retry {
            reason: if e.is_timeout() {
                "timeout".into()
            } else if e.is_transient() {
                format!(
                    "smtp_{}",
                    e.status()
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "4xx".into())
                )
            } else {
                "connection".into()
            },
            after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_sorts_and_the_parts_say_the_same() {
        let page = crate::delivery::testpage();
        let cx = Context {
            key: "e:oncall:1".into(),
            ..Context::default()
        };
        let m = build(&page, &cx);
        assert_eq!(m.subject, "[P1] payments: ledger API timed out");
        assert!(
            m.text
                .contains("Rollback: billing-sync rollback --to last-good"),
            "{}",
            m.text
        );
        assert!(m.html.contains("&lt;you&gt;"), "{}", m.html);
        assert_eq!(m.message_id, "<e.oncall.1@baton>");
    }
}
