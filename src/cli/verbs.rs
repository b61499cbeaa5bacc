//! The CLI verbs that talk to a running Baton over NATS: reports, handoff
//! commands, jobs; and how their replies are shown.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::{json, Value};

use baton::client::{Client, ClientError, REPORT_WAIT};

use super::args::OncallCmd;
use super::args::{Cmd, HandoffCmd, JobCmd, PersonCmd, TokenCmd};
use super::show;
use crate::{print_json, read_input};

/// A command's reply: raw with `--json`, else a few lines.
fn show_reply(verb: &str, reply: &Value, as_json: bool) {
    if as_json {
        print_json(reply);
    } else {
        for line in show::command_reply(verb, reply) {
            out!("{line}");
        }
    }
}

pub(crate) async fn client_command(client: &Client, cmd: &Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Ack { id, by, output } => show_reply(
            "ack",
            &client.command("ack", json!({"id": id, "by": by})).await?,
            output.json,
        ),
        Cmd::Override {
            id,
            by,
            reason,
            output,
        } => show_reply(
            "override",
            &client
                .command("override", json!({"id": id, "by": by, "reason": reason}))
                .await?,
            output.json,
        ),
        Cmd::Enrich {
            id,
            by,
            file,
            output,
        } => {
            let fields: Value =
                serde_json::from_slice(&read_input(file)?).context("fields file is not JSON")?;
            show_reply(
                "enrich",
                &client
                    .command("enrich", json!({"id": id, "by": by, "fields": fields}))
                    .await?,
                output.json,
            )
        }
        Cmd::Resolve {
            id,
            by,
            note,
            output,
        } => show_reply(
            "resolve",
            &client
                .command("resolve", json!({"id": id, "by": by, "note": note}))
                .await?,
            output.json,
        ),
        Cmd::Get { id, output } => {
            let handoff = &client.command("get", json!({"id": id})).await?["handoff"];
            if output.json {
                print_json(handoff)
            } else {
                for line in show::handoff(handoff) {
                    out!("{line}");
                }
            }
        }
        Cmd::List {
            status,
            severity,
            team,
            kind,
            template,
            limit,
            cursor,
            output,
        } => {
            // `all` is no filter; the daemon knows `open` and each status.
            let status = (status != "all").then_some(status);
            let reply = client
                .command(
                    "list",
                    json!({"status": status, "severity": severity, "team": team,
                           "kind": kind, "template": template, "limit": limit,
                           "cursor": cursor}),
                )
                .await?;
            let page = &reply["page"];
            if output.json {
                print_json(page);
            } else {
                let items = page["items"].as_array().cloned().unwrap_or_default();
                for h in &items {
                    out!("{}", show::list_line(h));
                }
                match page["next_cursor"].as_str() {
                    Some(c) => out!("{} shown; more with --cursor {c}", items.len()),
                    None => out!("{} handoff(s)", items.len()),
                }
            }
        }
        Cmd::Pages { follow, all, json } => client.pages(*follow, *all, *json).await?,
        Cmd::Deliveries { id, follow, json } => client.deliveries(*id, *follow, *json).await?,
        Cmd::Job {
            action: JobCmd::Run { name, json },
        } => print_job(&client.job(name, json!({})).await?, *json),
        Cmd::Handoff { action, output } => {
            show_reply(action.verb(), &handoff(client, action).await?, output.json)
        }
        Cmd::Stats {
            days,
            json: as_json,
        } => {
            // The reply carries every figure of `/v1/stats`; this command
            // shows the team-handoff ones.
            let v = client.command("stats", json!({"days": days})).await?;
            let work = &v["stats"]["work"];
            if *as_json {
                print_json(work);
            } else {
                let stats: Vec<baton::teams::WorkStats> = serde_json::from_value(work.clone())?;
                out_raw!("{}", baton::teams::render_table(&stats));
                if let Some(before) = v["stats"]["closed_evicted_before"].as_str() {
                    eprintln!(
                        "note: handoffs closed before {before} have left memory \
                         (limits.closed_retention) and are not counted"
                    );
                }
            }
        }
        Cmd::Person {
            action: PersonCmd::Token { action },
        } => token(client, action).await?,
        Cmd::Oncall {
            action,
            at,
            rotation,
            known,
            json,
        } => oncall(client, action, at, rotation, known, *json).await?,
        Cmd::Review { date, json } => print_job(
            &client.job("daily-review", json!({"date": date})).await?,
            *json,
        ),
        Cmd::Serve
        | Cmd::Deliver
        | Cmd::Dev { .. }
        | Cmd::CheckConfig
        | Cmd::Report { .. }
        | Cmd::Diagram { .. } => {
            unreachable!("handled above")
        }
        Cmd::Replay { .. } | Cmd::Timeline { .. } | Cmd::Audit { .. } | Cmd::Export { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(())
}

/// `baton oncall …`.
async fn oncall(
    client: &Client,
    action: &Option<OncallCmd>,
    at: &Option<String>,
    rotation: &Option<String>,
    known: &Option<String>,
    as_json: bool,
) -> anyhow::Result<()> {
    let reply = match action {
        None => {
            let v = client
                .command(
                    "oncall",
                    json!({"at": at, "rotation": rotation, "known": known}),
                )
                .await?;
            if !as_json {
                for r in v["oncall"].as_array().into_iter().flatten() {
                    let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                    let over = match r["override"]["id"].as_str() {
                        Some(id) => format!(" (override {id} for {})", s("scheduled")),
                        None => String::new(),
                    };
                    out_raw!(
                        "{}\t{}{}\tbackup {}\tshift {} – {}\n",
                        s("rotation"),
                        s("person"),
                        over,
                        s("backup"),
                        s("shift_start"),
                        s("shift_end")
                    );
                }
                return Ok(());
            }
            v
        }
        Some(OncallCmd::Override {
            rotation,
            by,
            replaces,
            from,
            until,
            created_by,
        }) => {
            client
                .command(
                    "oncall_override",
                    json!({"rotation": rotation, "by": by, "replaces": replaces,
                           "from": from, "until": until, "created_by": created_by}),
                )
                .await?
        }
        Some(OncallCmd::Cancel { id, by, reason }) => {
            client
                .command(
                    "oncall_cancel",
                    json!({"id": id, "by": by, "reason": reason}),
                )
                .await?
        }
        Some(OncallCmd::Participants {
            rotation,
            participants,
            effective,
            by,
        }) => {
            client
                .command(
                    "oncall_participants",
                    json!({"rotation": rotation, "participants": participants,
                           "effective": effective, "by": by}),
                )
                .await?
        }
    };
    if as_json {
        print_json(&reply);
    } else {
        for line in show::fields(&reply) {
            out!("{line}");
        }
    }
    Ok(())
}

/// `--field k=v` pairs and `--fields FILE` merged into one JSON object.
pub(crate) fn fields_arg(pairs: &[String], file: &Option<PathBuf>) -> anyhow::Result<Value> {
    let mut obj = match file {
        Some(f) => {
            match serde_json::from_slice(&read_input(f)?).context("fields file is not JSON")? {
                Value::Object(o) => o,
                _ => anyhow::bail!("the fields file must hold a JSON object"),
            }
        }
        None => serde_json::Map::new(),
    };
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--field {p:?}: expected KEY=VALUE"))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        obj.insert(k.to_string(), v);
    }
    Ok(Value::Object(obj))
}

pub(crate) async fn handoff(client: &Client, action: &HandoffCmd) -> anyhow::Result<Value> {
    let body = match action {
        HandoffCmd::Start {
            template,
            by,
            field,
            fields,
            dedup_key,
        } => json!({"template": template, "by": by,
                    "fields": fields_arg(field, fields)?, "dedup_key": dedup_key}),
        HandoffCmd::Accept { id, by } | HandoffCmd::Complete { id, by } => {
            json!({"id": id, "by": by})
        }
        HandoffCmd::Check { id, item, by } => json!({"id": id, "item": item, "by": by}),
        HandoffCmd::Return {
            id,
            by,
            missing,
            reason,
        } => json!({"id": id, "by": by, "missing": missing, "reason": reason}),
        HandoffCmd::Resubmit {
            id,
            by,
            field,
            fields,
        } => json!({"id": id, "by": by, "fields": fields_arg(field, fields)?}),
        HandoffCmd::Cancel { id, by, reason } => json!({"id": id, "by": by, "reason": reason}),
        HandoffCmd::Rate {
            id,
            by,
            rating,
            comment,
        } => json!({"id": id, "by": by, "rating": rating, "comment": comment}),
    };
    Ok(client.command(action.verb(), body).await?)
}

/// `baton person token …`.
async fn token(client: &Client, action: &TokenCmd) -> anyhow::Result<()> {
    match action {
        TokenCmd::Create {
            person,
            scope,
            name,
        } => {
            let (token, record) = client
                .create_credential(person, *scope, name.clone())
                .await?;
            eprintln!(
                "credential {} ({} scope) for {}; the token below is shown once and stored only hashed:",
                record.id,
                record.scope.as_str(),
                record.person
            );
            out!("{token}");
        }
        TokenCmd::Revoke { id } => {
            let r = client.revoke_credential(id).await?;
            out!("credential {} of {} revoked", r.id, r.person);
        }
        TokenCmd::List { person, json } => {
            let records = client.list_credentials(person.as_deref()).await?;
            if *json {
                let mut out = Vec::new();
                for r in &records {
                    let mut j = serde_json::to_value(baton::app::views::CredentialView::from(r))?;
                    j["person"] = json!(r.person);
                    out.push(j);
                }
                print_json(&Value::Array(out));
            } else {
                for r in &records {
                    let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
                        t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                            .unwrap_or_else(|| "-".into())
                    };
                    out!(
                        "{}  {:<16} {:<6} created {}  last used {}  {}{}",
                        r.id,
                        r.person,
                        r.scope.as_str(),
                        r.created_at.format("%Y-%m-%d %H:%M"),
                        fmt(r.last_used),
                        if r.revoked_at.is_some() {
                            "REVOKED "
                        } else {
                            ""
                        },
                        r.name.as_deref().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(())
}

/// Prints a job run: its Markdown digest, or the record as JSON.
pub(crate) fn print_job(reply: &Value, as_json: bool) {
    let record = &reply["record"];
    match record["markdown"].as_str() {
        Some(md) if !as_json => out!("{md}"),
        _ => print_json(record),
    }
}

/// How long `baton report` asks again when no daemon answers yet.
const NO_RESPONDERS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Publishes a report and shows what Baton made of it.
pub(crate) async fn report(client: &Client, template: &str, payload: &[u8]) -> anyhow::Result<()> {
    // A daemon that is starting has its streams before it answers
    // requests: ask again for a moment before storing the report for the
    // ingest alone (whose outcome nobody could then tell us).
    let asked = Instant::now();
    let answer = loop {
        match client.submit_report(template, payload).await? {
            None if asked.elapsed() < NO_RESPONDERS_WAIT => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            answer => break answer,
        }
    };
    let id = match answer {
        Some(reply) => {
            out!(
                "report stored (BATON_REPORTS seq {}); {}",
                reply["report_seq"],
                reply["message"].as_str().unwrap_or("")
            );
            reply["handoff_id"].as_str().unwrap_or_default().to_string()
        }
        None => {
            let (seq, _) = client.report(template, payload).await?;
            out!("report stored (BATON_REPORTS seq {seq}); no Baton is running: it is recorded when one starts");
            return Ok(());
        }
    };
    let started = Instant::now();
    loop {
        match client.command("get", json!({"id": id})).await {
            Ok(v) => {
                let h = &v["handoff"];
                out!(
                    "severity {} team {} status {} HCS {} missing {}",
                    h["severity"].as_str().unwrap_or("?"),
                    h["team"].as_str().unwrap_or("?"),
                    h["status"].as_str().unwrap_or("?"),
                    h["hcs"]["score"],
                    h["hcs"]["missing"]
                );
                break;
            }
            Err(ClientError::Refused { code, .. })
                if code == "not_found" && started.elapsed() < REPORT_WAIT =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => {
                out!("Baton has not processed it yet ({e}); it will when it runs");
                break;
            }
        }
    }
    Ok(())
}
