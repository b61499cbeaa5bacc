//! The session cookie's value: `v1.<credential id>.<expiry>.<signature>`,
//! signed with HMAC-SHA256. It names the credential the person signed in
//! with (never its secret): the server checks the signature and expiry,
//! then that the credential is still active, on every request. Pure but
//! for [`SessionKey::random`].

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE: &str = "baton_session";

/// The key that signs session cookies.
#[derive(Clone)]
pub struct SessionKey(Vec<u8>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

impl SessionKey {
    /// `[console] session_key`, or a random key for this process (sessions
    /// then end when it restarts).
    pub fn new(configured: Option<&str>) -> Self {
        match configured {
            Some(k) => SessionKey(k.as_bytes().to_vec()),
            None => Self::random(),
        }
    }

    /// 32 random bytes from the system.
    pub fn random() -> Self {
        let mut k = vec![0u8; 32];
        OsRng.fill_bytes(&mut k);
        SessionKey(k)
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(payload.as_bytes());
        m
    }

    /// The cookie value for `credential`, valid until `expires` (Unix
    /// seconds).
    pub fn sign(&self, credential: &str, expires: i64) -> String {
        let payload = format!("v1.{credential}.{expires}");
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// The credential id a cookie value names, if its signature holds and
    /// it has not expired at `now` (Unix seconds).
    pub fn verify(&self, value: &str, now: i64) -> Option<String> {
        let (payload, sig) = value.rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        self.mac(payload).verify_slice(&sig).ok()?;
        let rest = payload.strip_prefix("v1.")?;
        let (credential, expires) = rest.rsplit_once('.')?;
        let expires: i64 = expires.parse().ok()?;
        (now < expires && !credential.is_empty()).then(|| credential.to_string())
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The `Set-Cookie` value that stores `value` for `max_age` seconds.
pub fn set_cookie(value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_session_names_its_credential_until_it_expires() {
        let key = SessionKey::new(Some("0123456789abcdef0123456789abcdef"));
        let v = key.sign("cred1", 1_000);
        assert_eq!(key.verify(&v, 999).as_deref(), Some("cred1"));
        assert_eq!(key.verify(&v, 1_000), None, "expired");
        assert_eq!(SessionKey::random().verify(&v, 0), None, "another key");
        let forged = v.replace("cred1", "cred2");
        assert_eq!(key.verify(&forged, 0), None, "tampered");
        assert_eq!(key.verify("garbage", 0), None);
        assert!(!v.contains("secret"));
    }

    #[test]
    fn cookies_are_found_by_name_and_set_strictly() {
        assert_eq!(cookie("a=1; baton_session=x.y; b=2", COOKIE), Some("x.y"));
        assert_eq!(cookie("a=1", COOKIE), None);
        let c = set_cookie("v", 60, true);
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Secure",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!set_cookie("v", 60, false).contains("Secure"));
    }
}
