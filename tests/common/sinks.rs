//! Local sinks for delivery tests: an HTTP server on 127.0.0.1:0 whose
//! paths answer as the test needs, a listener that closes every connection,
//! and a minimal SMTP server. No outside network.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

/// One request the HTTP sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub key: String,
    pub page_id: String,
    pub signature: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Attempts per (path, idempotency key).
    tries: HashMap<(String, String), u32>,
}

/// The HTTP sink. Paths:
/// `/ok` 200; `/flaky` 500 on a key's first attempt, then 200;
/// `/limited` 429 with `Retry-After: 1` first, then 200; `/bad` 400;
/// `/slack_gone` 404 `channel_not_found`; `/hang` never answers in time;
/// `/hold` holds the first request it ever gets until [`HttpSink::release`]
/// (the client times out meanwhile), and answers 200 to every other.
#[derive(Clone)]
pub struct HttpSink {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    release: Arc<Notify>,
    /// Notified on every request.
    pub arrived: Arc<Notify>,
}

impl HttpSink {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = HttpSink {
            addr: listener.local_addr().unwrap(),
            inner: Arc::default(),
            release: Arc::new(Notify::new()),
            arrived: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/{path}", post(answer))
            .with_state(sink.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        sink
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    pub fn on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Lets a held `/hold` request answer 200.
    pub fn release(&self) {
        self.release.notify_waiters();
    }
}

async fn answer(
    State(sink): State<HttpSink>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let key = h("idempotency-key").unwrap_or_default();
    let n = {
        let mut inner = sink.inner.lock().unwrap();
        inner.received.push(Received {
            path: path.clone(),
            key: key.clone(),
            page_id: h("x-baton-page-id").unwrap_or_default(),
            signature: h("x-baton-signature"),
            body: body.to_vec(),
        });
        let first_on_path = !inner.received[..inner.received.len() - 1]
            .iter()
            .any(|r| r.path == path);
        let n = inner.tries.entry((path.clone(), key)).or_default();
        *n += 1;
        (*n, first_on_path)
    };
    let (n, first_on_path) = n;
    sink.arrived.notify_waiters();
    match path.as_str() {
        "ok" => (StatusCode::OK, "ok").into_response(),
        "flaky" if n == 1 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "flaky" => StatusCode::OK.into_response(),
        "limited" if n == 1 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", "1")],
            "rate_limited",
        )
            .into_response(),
        "limited" => StatusCode::OK.into_response(),
        "bad" => (StatusCode::BAD_REQUEST, "invalid_payload").into_response(),
        "slack_gone" => (StatusCode::NOT_FOUND, "channel_not_found").into_response(),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        }
        "hold" if first_on_path => {
            sink.release.notified().await;
            StatusCode::OK.into_response()
        }
        "hold" => StatusCode::OK.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A listener that accepts and closes every connection at once.
pub async fn closing_listener() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    addr
}

/// A mail the SMTP sink took.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub data: String,
}

/// A minimal SMTP server: EHLO, MAIL, RCPT, DATA, QUIT; every mail taken.
#[derive(Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = SmtpSink {
            addr: listener.local_addr().unwrap(),
            mails: Arc::default(),
        };
        let mails = sink.mails.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let mails = mails.clone();
                tokio::spawn(async move {
                    let _ = session(s, mails).await;
                });
            }
        });
        sink
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

async fn session(s: tokio::net::TcpStream, mails: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 sink ESMTP\r\n").await?;
    let mut to = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            w.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?;
        } else if upper.starts_with("MAIL FROM") {
            w.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO") {
            to = line[8..]
                .trim()
                .trim_matches(|c| c == '<' || c == '>')
                .to_string();
            w.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("DATA") {
            w.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(&line);
            }
            mails.lock().unwrap().push(Mail {
                to: to.clone(),
                data,
            });
            w.write_all(b"250 queued\r\n").await?;
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            w.write_all(b"250 OK\r\n").await?;
        }
    }
}
