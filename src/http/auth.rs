//! Bearer-token auth, decided by method and path so a new route is guarded
//! by default: everything except `GET`/`HEAD` needs a token; reads need one
//! with `http.protect_reads`; the probes, `/metrics` and `/openapi.json`
//! never do (a scraper or a load balancer must not hold a secret), nor the
//! PagerDuty-compatible endpoints, whose `routing_key` is their credential,
//! nor the web console's pages, which authenticate by session cookie
//! (`super::console`).
//!
//! Two kinds of bearer token are accepted:
//!
//! - a **person credential** (`baton_<id>_<secret>`, made with `baton
//!   person token create`): the request acts as that person
//!   ([`Actor::Person`]); roles and `by` follow from it;
//! - a **shared token** (`http.tokens`): the compatibility mode. It acts
//!   with the body's `by`, which nothing proves, and cannot take an action
//!   limited to a role ([`Actor::Shared`]).
//!
//! Which requests need a token is decided by [`Auth::required`] alone (method
//! and path), so exempting a path is a change there and nowhere else. The
//! middleware puts the [`Actor`] in the request's extensions for the
//! handlers.
//!
//! Shared tokens are compared in constant time against every configured
//! token; a person credential is found by its id and checked with argon2id
//! (once per token per process). Neither a presented nor a configured token
//! is ever logged: a refusal logs only the method, the path, whether a
//! token was missing or wrong, and a person credential's id.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::problem::Problem;
use crate::config::HttpConfig;
use crate::identity::{Actor, Identity};

/// Paths that are always open.
pub const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// Paths whose requests carry their own credential (PagerDuty's
/// `routing_key`, checked by `crate::intake::pagerduty`), as at PagerDuty.
pub const ROUTING_KEY_PATHS: &[&str] = &["/v2/enqueue", "/v1/pagerduty/enqueue"];

/// One-click links (`/a/<token>`): the signed token is the credential,
/// checked by `http::links`.
pub const LINK_PREFIX: &str = "/a/";

/// What the middleware checks against.
#[derive(Clone)]
pub struct Auth {
    tokens: Arc<[Box<[u8]>]>,
    protect_reads: bool,
    /// Person credentials; `None`: shared tokens only.
    identity: Option<Identity>,
}

impl Auth {
    pub fn new(cfg: &HttpConfig) -> Self {
        Self {
            tokens: cfg
                .tokens
                .iter()
                .map(|t| t.as_bytes().to_vec().into_boxed_slice())
                .collect(),
            protect_reads: cfg.protect_reads,
            identity: None,
        }
    }

    /// Also accepts person credentials, checked by `identity`.
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Whether a request to `path` with `method` needs a token.
    pub fn required(&self, method: &Method, path: &str) -> bool {
        if OPEN_PATHS.contains(&path)
            || ROUTING_KEY_PATHS.contains(&path)
            || path.starts_with(LINK_PREFIX)
        {
            return false;
        }
        // The web console authenticates by its session cookie (and checks
        // each POST's origin) in `super::console`, not by bearer token.
        if super::console::is_console_path(path) {
            return false;
        }
        let read = method == Method::GET || method == Method::HEAD;
        !read || self.protect_reads
    }

    /// Constant-time match against every token: no early exit, so timing
    /// tells neither which token nor how much of one matched. (Only a
    /// length mismatch is cheaper, which reveals nothing usable.)
    fn accepts(&self, presented: &[u8]) -> bool {
        let mut ok = subtle::Choice::from(0);
        for t in self.tokens.iter() {
            ok |= t.as_ref().ct_eq(presented);
        }
        bool::from(ok)
    }
}

/// The `Authorization: Bearer <token>` value, if well-formed.
fn bearer(req: &Request) -> Option<&[u8]> {
    let value = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// The middleware.
pub async fn require_token(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    if !auth.required(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let refused = match bearer(&req) {
        Some(t) if auth.accepts(t) => {
            req.extensions_mut().insert(Actor::Shared);
            return next.run(req).await;
        }
        Some(t) => match (&auth.identity, std::str::from_utf8(t)) {
            (Some(identity), Ok(t)) if Identity::is_person_token(t) => {
                match identity.authenticate(t).await {
                    Ok(actor) => {
                        req.extensions_mut().insert(actor);
                        return next.run(req).await;
                    }
                    Err(e) if e.store().is_some() => {
                        tracing::error!(error = %e, "cannot check a credential");
                        return Problem::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "unavailable",
                            "credentials cannot be checked right now; retry",
                        )
                        .into_response();
                    }
                    Err(e) => {
                        // The error names the credential id, never the secret.
                        tracing::info!(method = %req.method(), path = req.uri().path(), reason = %e, "credential refused");
                        "wrong"
                    }
                }
            }
            _ => "wrong",
        },
        None => "missing",
    };
    tracing::info!(method = %req.method(), path = req.uri().path(), token = refused, "request refused");
    let detail = if auth.tokens.is_empty() && auth.identity.is_none() {
        "this endpoint needs a bearer token and none is configured (http.tokens or BATON_HTTP_TOKENS)"
    } else if auth.tokens.is_empty() {
        "this endpoint needs a bearer token: a valid person credential (`baton person token create`), \
         or a shared token, of which none is configured (http.tokens or BATON_HTTP_TOKENS)"
    } else {
        "send a valid person credential (or shared token) as `Authorization: Bearer <token>`"
    };
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(tokens: &[&str], protect_reads: bool) -> Auth {
        Auth::new(&HttpConfig {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            protect_reads,
            ..HttpConfig::default()
        })
    }

    #[test]
    fn only_the_exact_token_is_accepted() {
        let a = auth(&["first-token-0000001", "second-token-000002"], false);
        assert!(a.accepts(b"first-token-0000001"));
        assert!(a.accepts(b"second-token-000002"));
        assert!(!a.accepts(b"first-token-000000"));
        assert!(!a.accepts(b"first-token-00000011"));
        assert!(!a.accepts(b""));
        assert!(!auth(&[], false).accepts(b""));
    }

    #[test]
    fn reads_are_open_unless_protected_and_probes_always_are() {
        let open = auth(&[], false);
        assert!(!open.required(&Method::GET, "/v1/handoffs"));
        assert!(open.required(&Method::POST, "/v1/reports/agent_failure"));
        assert!(open.required(&Method::DELETE, "/v1/handoffs"));
        let closed = auth(&[], true);
        assert!(closed.required(&Method::GET, "/v1/stats"));
        for p in OPEN_PATHS {
            assert!(!closed.required(&Method::GET, p));
        }
        for p in ROUTING_KEY_PATHS {
            assert!(!closed.required(&Method::POST, p));
        }
        assert!(closed.required(&Method::POST, "/v1/alertmanager/prod"));
        assert!(!closed.required(&Method::POST, "/handoffs/x/ack"));
        assert!(!closed.required(&Method::GET, "/"));
    }
}
