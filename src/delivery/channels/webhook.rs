//! `webhook`: the page JSON (`wire::page`, the same bytes as on
//! `BATON_PAGES`) POSTed to a URL.
//!
//! Headers: `Idempotency-Key: <page msg-id>:<contact index>` (the same on
//! every attempt and after a crash: a receiver drops a repeat by it),
//! `X-Baton-Page-Id: <page msg-id>`, `X-Baton-Signature: sha256=<hex>`
//! (HMAC-SHA256 of the body with `BATON_DELIVERY_WEBHOOK_SECRET`, when set)
//! and `[delivery.webhook] headers`.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{classify_http, classify_request_error, retry_after, Attempt, Context};
use crate::pages::Page;

/// One request, built without I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub body: Vec<u8>,
    /// In a fixed order; secrets' values are only the signature's.
    pub headers: Vec<(String, String)>,
}

/// The request for `page`: its JSON body and headers.
pub fn build(
    page: &Page,
    cx: &Context,
    secret: Option<&str>,
    extra: &BTreeMap<String, String>,
) -> Request {
    let body = serde_json::to_vec(page).expect("pages serialize");
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Idempotency-Key".to_string(), cx.key.clone()),
        ("X-Baton-Page-Id".to_string(), cx.page_id.clone()),
    ];
    if let Some(secret) = secret {
        headers.push((
            "X-Baton-Signature".to_string(),
            format!("sha256={}", sign(secret.as_bytes(), &body)),
        ));
    }
    headers.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    Request { body, headers }
}

/// Lower-case hex HMAC-SHA256 of `body` under `key`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends one attempt.
pub async fn send(http: &reqwest::Client, url: &str, req: Request) -> Attempt {
    let mut r = http.post(url).body(req.body);
    for (k, v) in &req.headers {
        r = r.header(k, v);
    }
    match r.send().await {
        Ok(resp) => {
            let after = retry_after(
                resp.headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
                chrono::Utc::now(),
            );
            classify_http(resp.status().as_u16(), after)
        }
        Err(e) => classify_request_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_hex_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn headers_carry_the_key_the_page_id_the_signature_and_extras() {
        let page = crate::delivery::testpage();
        let cx = Context {
            key: "e:oncall:0".into(),
            page_id: "e:oncall".into(),
            ..Context::default()
        };
        let extra = BTreeMap::from([("X-Team".to_string(), "payments".to_string())]);
        let r = build(&page, &cx, Some("k"), &extra);
        let h: BTreeMap<_, _> = r.headers.iter().cloned().collect();
        assert_eq!(h["Idempotency-Key"], "e:oncall:0");
        assert_eq!(h["X-Baton-Page-Id"], "e:oncall");
        assert_eq!(
            h["X-Baton-Signature"],
            format!("sha256={}", sign(b"k", &r.body))
        );
        assert_eq!(h["X-Team"], "payments");
        let back: Page = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(back, page);
        assert!(!build(&page, &cx, None, &BTreeMap::new())
            .headers
            .iter()
            .any(|(k, _)| k == "X-Baton-Signature"));
    }
}
