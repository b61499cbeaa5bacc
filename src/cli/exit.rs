//! What the CLI's exit status means (documented in docs/cli.md) and how an
//! error is shown: one line, each cause once, a hint where one helps.

use std::process::ExitCode;

use baton::client::ClientError;
use baton::config::ConfigError;
use baton::server::ServeError;
use baton::store::StoreError;

// 0: done.

/// Could not be done: NATS or the daemon unreachable, I/O, the dev data dir
/// in use, nats-server failed to start.
pub const FAILURE: u8 = 1;
/// Bad arguments (clap's own code), or `audit verify` found a violation.
pub const USAGE: u8 = 2;
/// The configuration is invalid (`check-config` lists every problem).
pub const CONFIG: u8 = 3;
/// Baton refused: the daemon refused the command (not found, already
/// acknowledged, forbidden, …) or the report is invalid.
pub const REFUSED: u8 = 4;

/// The exit status for an error, from the kinds in its chain.
pub fn code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(ClientError::Refused { .. } | ClientError::Invalid(_)) =
            cause.downcast_ref::<ClientError>()
        {
            return REFUSED;
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return CONFIG;
        }
    }
    FAILURE
}

/// The error's message with each cause once: a cause whose text the
/// message already holds (thiserror's `{source}` in the message *and* as
/// `source()`) is not repeated.
pub fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// Where to look next, for errors a newcomer hits first.
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    // `StoreError` also hides inside the transparent variants of the
    // daemon's and the client's errors (the chain does not list it).
    fn store<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a StoreError> {
        cause
            .downcast_ref::<StoreError>()
            .or(match cause.downcast_ref::<ServeError>() {
                Some(ServeError::Store(s)) => Some(s),
                _ => None,
            })
            .or(match cause.downcast_ref::<ClientError>() {
                Some(ClientError::Store(s)) => Some(s),
                _ => None,
            })
    }
    e.chain().find_map(|cause| match store(cause) {
        Some(StoreError::Connect { .. }) => Some(
            "the NATS URL comes from [nats] url in the config file (--config or BATON_CONFIG; \
             default config/baton.toml if present) or BATON_NATS_URL; for `baton dev` use \
             BATON_CONFIG=config/dev.toml",
        ),
        _ => None,
    })
}

/// Prints the error to stderr and gives its exit status.
pub fn report(e: &anyhow::Error) -> ExitCode {
    let refused = e
        .chain()
        .find_map(|c| match c.downcast_ref::<ClientError>() {
            Some(ClientError::Refused { code, message }) => Some(format!("({code}): {message}")),
            _ => None,
        });
    match refused {
        Some(r) => eprintln!("refused {r}"),
        None => eprintln!("error: {}", message(e)),
    }
    if let Some(h) = hint(e) {
        eprintln!("hint: {h}");
    }
    ExitCode::from(code(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x: {source}")]
    struct Read {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = anyhow::Error::new(Read {
            source: std::io::Error::other("disk on fire"),
        });
        assert_eq!(message(&e), "cannot read x: disk on fire");
        let wrapped = e.context("loading config");
        assert_eq!(
            message(&wrapped),
            "loading config: cannot read x: disk on fire"
        );
    }

    #[test]
    fn a_connect_error_hints_where_the_url_comes_from() {
        let connect = || StoreError::Connect {
            url: "nats://127.0.0.1:1".into(),
            message: "refused".into(),
        };
        for e in [
            anyhow::Error::new(ServeError::Store(connect())),
            anyhow::Error::new(ClientError::Store(connect())),
        ] {
            assert!(hint(&e).is_some_and(|h| h.contains("BATON_CONFIG")), "{e}");
        }
        assert_eq!(hint(&anyhow::anyhow!("other")), None);
    }

    #[test]
    fn refusals_and_config_errors_have_their_own_codes() {
        let refused = anyhow::Error::new(ClientError::Refused {
            code: "not_found".into(),
            message: "no such handoff".into(),
        });
        assert_eq!(code(&refused), REFUSED);
        let config = anyhow::Error::new(ConfigError::Invalid(vec!["x".into()]));
        assert_eq!(code(&config), CONFIG);
        assert_eq!(code(&anyhow::anyhow!("io")), FAILURE);
    }
}
