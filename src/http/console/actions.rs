//! What a person may do from a page: the buttons offered and the POSTs,
//! each through `Handoffs::command_as`.

use super::*;

fn allowed(s: &AppState, actor: Option<&Actor>, action: Action, facts: &Facts) -> bool {
    actor.is_some_and(|a| {
        matches!(
            authorize(a, action, facts, s.identity.rules()),
            Decision::Allow
        )
    })
}

/// The buttons offered: allowed by the person's roles and sensible in the
/// handoff's state (the domain still decides).
pub(super) fn actions(s: &AppState, actor: Option<&Actor>, view: &HandoffView) -> Actions {
    let none = Facts::default();
    match view {
        HandoffView::Incident(i) => {
            let open = i.resolved.is_none();
            Actions {
                ack: open
                    && i.acknowledged.is_none()
                    && allowed(s, actor, Action::Acknowledge, &none),
                resolve: open && allowed(s, actor, Action::Resolve, &none),
                override_gate: open
                    && i.gate.held.is_some()
                    && allowed(s, actor, Action::Override, &none),
                enrich: open && allowed(s, actor, Action::Enrich, &none),
                ..Actions::default()
            }
        }
        HandoffView::Team(t) => {
            use crate::domain::TeamStatus as T;
            let facts = Facts {
                members_only_team: s
                    .identity
                    .members_only(&t.template)
                    .then(|| t.to_team.clone()),
            };
            let other = allowed(s, actor, Action::OtherTeamCommand, &none);
            Actions {
                accept: t.status == T::Initiated && allowed(s, actor, Action::Accept, &facts),
                check: t.status == T::Accepted && other,
                complete: t.status == T::Accepted && allowed(s, actor, Action::Complete, &facts),
                return_: matches!(t.status, T::Initiated | T::Accepted) && other,
                rate: t.status == T::Completed
                    && t.rating.is_none()
                    && allowed(s, actor, Action::Rate, &facts),
                ..Actions::default()
            }
        }
    }
}

const VERBS: &[&str] = &[
    "ack", "resolve", "override", "enrich", "accept", "check", "complete", "return", "rate",
];

/// A form's fields as the verb's JSON body (empty fields left out).
pub fn form_body(verb: &str, form: &[(String, String)]) -> Map<String, Value> {
    let mut body = Map::new();
    let mut fields = Map::new();
    for (k, v) in form {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match (verb, k.as_str()) {
            ("enrich", k) if k.starts_with("field.") => {
                // A field's value: JSON when it parses as an object or a
                // number (`blast_radius`), else the text; dotted names nest.
                let value = match serde_json::from_str::<Value>(v) {
                    Ok(j @ (Value::Object(_) | Value::Number(_))) => j,
                    _ => Value::String(v.to_string()),
                };
                let mut path = k["field.".len()..].split('.').collect::<Vec<_>>();
                let last = path.pop().unwrap_or_default().to_string();
                let mut at = &mut fields;
                for p in path {
                    let next = at
                        .entry(p.to_string())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !next.is_object() {
                        *next = Value::Object(Map::new());
                    }
                    at = next.as_object_mut().expect("an object");
                }
                at.insert(last, value);
            }
            ("check", "item") | ("rate", "rating") => {
                let n = v.parse::<u64>().map(Value::from);
                body.insert(k.clone(), n.unwrap_or_else(|_| Value::String(v.into())));
            }
            ("return", "missing") => {
                let list = v
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(|m| Value::String(m.into()))
                    .collect();
                body.insert("missing".into(), Value::Array(list));
            }
            (_, "note" | "reason" | "comment") => {
                body.insert(k.clone(), Value::String(v.into()));
            }
            _ => {}
        }
    }
    if verb == "enrich" {
        body.insert("fields".into(), Value::Object(fields));
    }
    body
}

pub(super) async fn act(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let Some((actor, viewer)) = session(&s, &headers).await else {
        return page(
            StatusCode::UNAUTHORIZED,
            views::message(
                "Sign in first",
                "Acting on a handoff needs a signed-in person: sign in at /login.",
                None,
            ),
        );
    };
    let (Ok(id), true) = (Uuid::try_parse(&id), VERBS.contains(&verb.as_str())) else {
        return not_found(Some(&viewer));
    };
    let Ok(Form(form)) = form else {
        return page(
            StatusCode::BAD_REQUEST,
            views::message("Refused", "The form could not be read.", Some(&viewer)),
        );
    };
    match s
        .app
        .command_as(&actor, &verb, id, form_body(&verb, &form))
        .await
    {
        Ok(_) => Redirect::to(&format!("/handoffs/{id}")).into_response(),
        Err(e) => app_error(e, Some(&viewer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_become_the_verbs_bodies() {
        let f = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let b = form_body(
            "enrich",
            &f(&[
                ("field.owner.primary", "alice"),
                ("field.blast_radius", "{\"users\": 3}"),
                ("field.recommended_action", " "),
            ]),
        );
        assert_eq!(
            Value::Object(b),
            serde_json::json!({"fields": {"owner": {"primary": "alice"}, "blast_radius": {"users": 3}}})
        );
        let b = form_body("return", &f(&[("missing", "a, b"), ("reason", "x")]));
        assert_eq!(
            Value::Object(b),
            serde_json::json!({"missing": ["a", "b"], "reason": "x"})
        );
        let b = form_body(
            "rate",
            &f(&[("rating", "4"), ("comment", ""), ("by", "eve")]),
        );
        assert_eq!(Value::Object(b), serde_json::json!({"rating": 4}));
    }
}
