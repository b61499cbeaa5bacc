//! RFC 9457 problem details: the one shape every HTTP error takes.
//!
//! `type` is `urn:baton:problem:<code>` and `code` repeats the stable code,
//! so clients match on either and never on the prose. A code always comes
//! with the same status, and `title` is that status's reason phrase, so a
//! type's title never varies. Internal details (store errors, timeouts'
//! causes) are logged where they happen; `detail` only says what the caller
//! can act on.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppError;
use crate::domain::FieldError;

/// The `type` URI prefix; the stable code follows it.
pub const TYPE_PREFIX: &str = "urn:baton:problem:";

/// The media type of every error body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// An error answer (RFC 9457). Boxed: it travels in every handler's
/// `Result`, and the error path should not make the success path's
/// `Result` 150 bytes wide.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem(Box<ProblemDetails>);

/// The body of a [`Problem`].
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDetails {
    /// `urn:baton:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(example = "urn:baton:problem:not_found")]
    pub kind: String,
    /// The HTTP reason phrase of `status`.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// Stable machine-readable code (`not_found`, `invalid_report`, …).
    pub code: String,
    /// The offending field, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field error at once (invalid reports and queries).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

/// One field's problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProblemField {
    /// Dotted field name; empty for the payload as a whole.
    pub field: String,
    pub code: String,
    pub message: String,
}

impl From<FieldError> for ProblemField {
    fn from(e: FieldError) -> Self {
        Self {
            field: e.field,
            code: e.code,
            message: e.message,
        }
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self(Box::new(ProblemDetails {
            kind: format!("{TYPE_PREFIX}{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
            field: None,
            errors: Vec::new(),
        }))
    }

    /// Adds the list of field errors.
    pub fn with_errors(mut self, errors: impl IntoIterator<Item = ProblemField>) -> Self {
        self.0.errors = errors.into_iter().collect();
        self
    }

    /// Names the offending field.
    pub fn with_field(mut self, field: Option<String>) -> Self {
        self.0.field = field;
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::ops::Deref for Problem {
    type Target = ProblemDetails;
    fn deref(&self) -> &ProblemDetails {
        &self.0
    }
}

/// The application's refusal as a problem: its code, status, field and
/// field errors (logged here, once; a store failure's cause only here).
impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        e.log("http");
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Problem::new(status, e.code(), e.to_string())
            .with_field(e.field())
            .with_errors(e.errors().iter().cloned().map(ProblemField::from))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut res = (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            serde_json::to_vec(&*self.0).expect("problem serializes"),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"baton\""),
            );
        }
        res
    }
}
