//! The pages, as pure functions: view structs in, [`Markup`] out. No I/O,
//! no clock (`now` comes in), so each page is unit-tested by rendering it.
//! maud escapes every value spliced in.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use uuid::Uuid;

use crate::app::oncall::{OncallView, OverrideView};
use crate::app::views::HandoffView;
use crate::replay::timeline::{human, Line};

pub use super::detail::handoff;

/// Who is signed in, as the header shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The person id.
    pub person: String,
    /// Their display name.
    pub name: String,
}

/// The list's filters and tab, kept in the URL query.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Filters {
    /// `team` for team handoffs; anything else: incidents.
    #[serde(default)]
    pub tab: Option<String>,
    /// `P1`, `P2`, `P3`.
    #[serde(default)]
    pub severity: Option<String>,
    /// A team.
    #[serde(default)]
    pub team: Option<String>,
    /// A status, or `open` (the default).
    #[serde(default)]
    pub state: Option<String>,
    /// Present (any value but empty): only what concerns the signed-in
    /// person.
    #[serde(default)]
    pub mine: Option<String>,
}

impl Filters {
    /// Whether the team-handoff tab is shown.
    pub fn team_tab(&self) -> bool {
        self.tab.as_deref() == Some("team")
    }

    /// Whether "mine" is asked for.
    pub fn mine(&self) -> bool {
        self.mine.as_deref().is_some_and(|m| !m.is_empty())
    }

    fn value(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or("")
    }
}

/// One incident of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    pub id: Uuid,
    pub severity: String,
    pub team: String,
    pub hcs: f64,
    /// The person of the latest page's notice, if it names one.
    pub paged: Option<String>,
    pub status: String,
    pub opened_at: DateTime<Utc>,
    pub next_deadline: Option<DateTime<Utc>>,
    /// The error summary or workflow, to tell rows apart.
    pub summary: Option<String>,
}

/// One team handoff of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamRow {
    pub id: Uuid,
    pub template: String,
    pub from_team: String,
    pub to_team: String,
    pub status: String,
    pub opened_at: DateTime<Utc>,
    pub next_deadline: Option<DateTime<Utc>>,
    pub checked: usize,
    pub checklist: usize,
}

/// The open-handoffs page's data.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    pub filters: Filters,
    pub incidents: Vec<IncidentRow>,
    pub teams: Vec<TeamRow>,
    pub now: DateTime<Utc>,
    /// A filter the list refused, in words.
    pub error: Option<String>,
}

/// Which actions the page offers: the signed-in person's roles allow them
/// and the handoff's state makes sense of them. The server checks again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    pub ack: bool,
    pub resolve: bool,
    pub override_gate: bool,
    pub enrich: bool,
    pub accept: bool,
    pub check: bool,
    pub complete: bool,
    pub return_: bool,
    pub rate: bool,
}

/// One handoff's page data.
#[derive(Debug, Clone)]
pub struct Detail {
    pub view: HandoffView,
    /// The story, one line per event (`replay::timeline::lines`).
    pub lines: Vec<Line>,
    /// The whole `baton timeline` text (deadlines and outcome included).
    pub story: String,
    pub actions: Actions,
    /// Whether anyone is signed in (else a "sign in to act" link).
    pub signed_in: bool,
    pub now: DateTime<Utc>,
}

/// One rotation on the on-call page.
#[derive(Debug, Clone, PartialEq)]
pub struct RotationRow {
    /// Now.
    pub now: OncallView,
    /// Who takes the next shift (at `now.shift_end`).
    pub next: Option<String>,
}

/// The on-call page's data.
#[derive(Debug, Clone, PartialEq)]
pub struct OncallPage {
    pub rotations: Vec<RotationRow>,
    /// The `?at=` asked about, as typed.
    pub at: Option<String>,
    /// Who was on call then, per rotation.
    pub at_answer: Vec<OncallView>,
    /// Why `at` could not be answered.
    pub error: Option<String>,
    /// Overrides in force or still to come, not cancelled, soonest first.
    pub overrides: Vec<OverrideView>,
}

/// The page around every body: header, navigation, who is signed in.
pub fn layout(title: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Baton" }
                link rel="stylesheet" href="/console/app.css";
            }
            body {
                header {
                    strong { "Baton" }
                    nav aria-label="Main" {
                        a href="/" { "Open handoffs" }
                        a href="/oncall" { "On call" }
                    }
                    @match viewer {
                        Some(v) => {
                            span.who { "Signed in as " strong { (v.name) } " (" (v.person) ")" }
                            form.inline method="post" action="/logout" {
                                button type="submit" { "Sign out" }
                            }
                        }
                        None => { a href="/login" { "Sign in" } }
                    }
                }
                main id="main" { h1 { (title) } (body) }
                script src="/console/app.js" defer {}
            }
        }
    }
}

/// A deadline counting down: rendered now, updated each second by the
/// script from `data-deadline`.
pub fn countdown(deadline: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    match deadline {
        Some(d) => {
            let ms = (d - now).num_milliseconds();
            let text = if ms >= 0 {
                format!("in {}", human(ms))
            } else {
                format!("due {} ago", human(-ms))
            };
            html! { time datetime=(d.to_rfc3339()) data-deadline=(d.to_rfc3339()) { (text) } }
        }
        None => html! { span.muted { "none pending" } },
    }
}

pub(super) fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    human((now - at).num_milliseconds().max(0))
}

pub(super) fn badge(class: &str, text: &str) -> Markup {
    html! { span class=(format!("badge {class}")) { (text) } }
}

/// `/`: the filters, the tabs and the rows (refreshed live).
pub fn board(b: &Board, viewer: Option<&Viewer>) -> Markup {
    let f = &b.filters;
    let body = html! {
        p id="stale" class="banner" role="status" hidden {
            "Stale — reconnecting. This list may be out of date; it refreshes every 10 s until the live stream is back."
        }
        nav.tabs aria-label="Kind" {
            a href="/" aria-current=[(!f.team_tab()).then_some("page")] { "Incidents" }
            a href="/?tab=team" aria-current=[f.team_tab().then_some("page")] { "Team handoffs" }
        }
        form.filters method="get" action="/" {
            @if f.team_tab() { input type="hidden" name="tab" value="team"; }
            @if !f.team_tab() {
                div {
                    label for="severity" { "Severity" }
                    select id="severity" name="severity" {
                        @for s in ["", "P1", "P2", "P3"] {
                            option value=(s) selected[Filters::value(&f.severity) == s] {
                                @if s.is_empty() { "any" } @else { (s) }
                            }
                        }
                    }
                }
            }
            div {
                label for="team" { "Team" }
                input id="team" name="team" value=(Filters::value(&f.team));
            }
            div {
                label for="state" { "State" }
                input id="state" name="state" value=(Filters::value(&f.state)) placeholder="open";
            }
            div {
                label for="mine" {
                    input id="mine" type="checkbox" name="mine" value="1" checked[f.mine()];
                    " Mine only"
                }
            }
            button type="submit" { "Filter" }
        }
        @if let Some(e) = &b.error { p.banner role="alert" { (e) } }
        div id="rows" aria-live="polite" { (rows(b)) }
    };
    layout("Open handoffs", viewer, body)
}

/// The rows alone: what the script fetches from `/console/rows` on a nudge.
pub fn rows(b: &Board) -> Markup {
    if b.filters.team_tab() {
        team_rows(&b.teams, b.now)
    } else {
        incident_rows(&b.incidents, b.now)
    }
}

fn incident_rows(rows: &[IncidentRow], now: DateTime<Utc>) -> Markup {
    html! {
        @if rows.is_empty() {
            p { "No incidents match." }
        } @else {
            table.rows {
                caption.muted { (rows.len()) " incident(s), by severity then age" }
                thead { tr {
                    th scope="col" { "Severity" } th scope="col" { "Incident" } th scope="col" { "Team" }
                    th scope="col" { "HCS" } th scope="col" { "Paged" } th scope="col" { "State" }
                    th scope="col" { "Age" } th scope="col" { "Next escalation" }
                } }
                tbody {
                    @for r in rows {
                        tr data-id=(r.id) {
                            td data-label="Severity" { (badge(&format!("sev-{}", r.severity), &r.severity)) }
                            td data-label="Incident" {
                                a href=(format!("/handoffs/{}", r.id)) {
                                    (r.summary.as_deref().unwrap_or("(no summary)"))
                                }
                            }
                            td data-label="Team" { (r.team) }
                            td data-label="HCS" { (format!("{:.0}", r.hcs)) }
                            td data-label="Paged" { (r.paged.as_deref().unwrap_or("—")) }
                            td data-label="State" { (badge(&format!("st-{}", r.status), &r.status)) }
                            td data-label="Age" { (age(r.opened_at, now)) }
                            td data-label="Next escalation" { (countdown(r.next_deadline, now)) }
                        }
                    }
                }
            }
        }
    }
}

fn team_rows(rows: &[TeamRow], now: DateTime<Utc>) -> Markup {
    html! {
        @if rows.is_empty() {
            p { "No team handoffs match." }
        } @else {
            table.rows {
                caption.muted { (rows.len()) " team handoff(s), oldest first" }
                thead { tr {
                    th scope="col" { "Handoff" } th scope="col" { "From → to" } th scope="col" { "State" }
                    th scope="col" { "Checklist" } th scope="col" { "Age" } th scope="col" { "Next SLA" }
                } }
                tbody {
                    @for r in rows {
                        tr data-id=(r.id) {
                            td data-label="Handoff" { a href=(format!("/handoffs/{}", r.id)) { (r.template) } }
                            td data-label="From → to" { (r.from_team) " → " (r.to_team) }
                            td data-label="State" { (badge(&format!("st-{}", r.status), &r.status)) }
                            td data-label="Checklist" { (r.checked) "/" (r.checklist) " done" }
                            td data-label="Age" { (age(r.opened_at, now)) }
                            td data-label="Next SLA" { (countdown(r.next_deadline, now)) }
                        }
                    }
                }
            }
        }
    }
}

fn override_text(o: &OverrideView) -> String {
    format!(
        "{} instead of {} from {} until {} (by {})",
        o.by,
        o.replaces.as_deref().unwrap_or("whoever is scheduled"),
        o.from.format("%Y-%m-%d %H:%M UTC"),
        o.until.format("%Y-%m-%d %H:%M UTC"),
        o.created_by
    )
}

/// `/oncall`.
pub fn oncall(p: &OncallPage, viewer: Option<&Viewer>) -> Markup {
    let body = html! {
        @if p.rotations.is_empty() {
            p { "No rotations are configured (" code { "[rotations.<id>]" } ")." }
        } @else {
            table.rows {
                thead { tr {
                    th scope="col" { "Rotation" } th scope="col" { "On call now" } th scope="col" { "Shift ends" }
                    th scope="col" { "Next" } th scope="col" { "Override in force" }
                } }
                tbody {
                    @for r in &p.rotations {
                        tr {
                            td data-label="Rotation" { (r.now.rotation) }
                            td data-label="On call now" { (r.now.person.as_deref().unwrap_or("nobody")) }
                            td data-label="Shift ends" { (r.now.shift_end.format("%Y-%m-%d %H:%M UTC")) }
                            td data-label="Next" { (r.next.as_deref().unwrap_or("nobody")) }
                            td data-label="Override in force" {
                                @match &r.now.r#override { Some(o) => (override_text(o)), None => "none" }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="overrides" {
            h2 id="overrides" { "Overrides, current and upcoming" }
            @if p.overrides.is_empty() {
                p { "None." }
            } @else {
                ul {
                    @for o in &p.overrides { li { (o.rotation) ": " (override_text(o)) } }
                }
            }
        }
        section aria-labelledby="at" {
            h2 id="at" { "Who was on call at …" }
            form method="get" action="/oncall" {
                label for="at-input" { "Instant (RFC 3339, e.g. 2026-11-24T02:13:00Z)" }
                input id="at-input" name="at" value=(p.at.as_deref().unwrap_or("")) required;
                button type="submit" { "Look up" }
            }
            @if let Some(e) = &p.error { p.banner role="alert" { (e) } }
            @if !p.at_answer.is_empty() {
                ul {
                    @for v in &p.at_answer {
                        li { (v.rotation) ": " strong { (v.person.as_deref().unwrap_or("nobody")) }
                            @if let Some(o) = &v.r#override { " (override: " (override_text(o)) ")" } }
                    }
                }
            }
        }
    };
    layout("On call", viewer, body)
}

/// `/login`.
pub fn login(error: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(e) = error { p.banner role="alert" { (e) } }
        form method="post" action="/login" {
            label for="token" { "Person credential" }
            p.muted id="token-help" {
                "The token " code { "baton person token create <you>" } " printed ("
                code { "baton_…" } "). It is checked once; the session cookie does not hold it."
            }
            input id="token" name="token" type="password" autocomplete="current-password"
                aria-describedby="token-help" required;
            button type="submit" { "Sign in" }
        }
    };
    layout("Sign in", None, body)
}

/// An error or refusal, in words, with a way back.
pub fn message(title: &str, text: &str, viewer: Option<&Viewer>) -> Markup {
    layout(
        title,
        viewer,
        html! {
            p role="alert" { (text) }
            p { a href="/" { "Back to the open handoffs" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn row() -> IncidentRow {
        IncidentRow {
            id: Uuid::from_u128(1),
            severity: "P1".into(),
            team: "payments".into(),
            hcs: 92.5,
            paged: Some("alice".into()),
            status: "paged".into(),
            opened_at: t0() - chrono::Duration::minutes(3),
            next_deadline: Some(t0() + chrono::Duration::seconds(90)),
            summary: Some("<script>alert(1)</script>".into()),
        }
    }

    #[test]
    fn the_board_shows_state_in_words_a_countdown_and_escapes_input() {
        let b = Board {
            filters: Filters::default(),
            incidents: vec![row()],
            teams: vec![],
            now: t0(),
            error: None,
        };
        let html = board(&b, None).into_string();
        for needle in [
            "name=\"viewport\"",
            ">paged<",
            ">alice<",
            "data-deadline=\"2027-01-15T08:01:30+00:00\"",
            "in 1m 30s",
            "&lt;script&gt;",
            "id=\"stale\"",
            "Sign in",
            "/console/app.js",
        ] {
            assert!(html.contains(needle), "missing {needle:?} in {html}");
        }
        assert!(!html.contains("<script>alert"));
    }

    #[test]
    fn the_team_tab_shows_checklist_progress() {
        let b = Board {
            filters: Filters {
                tab: Some("team".into()),
                ..Filters::default()
            },
            incidents: vec![],
            teams: vec![TeamRow {
                id: Uuid::from_u128(2),
                template: "db_migration".into(),
                from_team: "app".into(),
                to_team: "dba".into(),
                status: "accepted".into(),
                opened_at: t0(),
                next_deadline: None,
                checked: 1,
                checklist: 3,
            }],
            now: t0(),
            error: None,
        };
        let html = rows(&b).into_string();
        assert!(
            html.contains("1/3 done") && html.contains("app → dba"),
            "{html}"
        );
        assert!(html.contains("none pending"));
    }

    #[test]
    fn login_takes_a_labelled_token_and_messages_escape() {
        let html = login(Some("wrong <token>")).into_string();
        assert!(html.contains("label for=\"token\""));
        assert!(html.contains("wrong &lt;token&gt;"));
        let m = message("Forbidden", "you need <b>", None).into_string();
        assert!(m.contains("you need &lt;b&gt;"));
    }
}
