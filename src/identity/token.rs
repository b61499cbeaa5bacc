//! The person credential's secret: its format, how it is made and checked.
//!
//! A token reads `baton_<id>_<secret>`: `<id>` is 16 lowercase hex digits
//! naming the stored record (`<prefix>.credential.<id>`, so the server
//! finds it without scanning) and `<secret>` 64 lowercase hex digits, 256
//! bits from the operating system's CSPRNG. Only an argon2id PHC hash of
//! the whole token is stored; the token itself is shown once, at creation.
//!
//! argon2id (the `argon2` crate of RustCrypto) because it is the password
//! hash OWASP recommends first, memory-hard, and its PHC string carries its
//! own parameters and salt, so a later change of cost keeps old records
//! verifiable. The secret has 256 bits of entropy, so the hash guards
//! against a leaked stream, not against guessing; the cost is paid once per
//! token per process (the caller caches successes by SHA-256).

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// What every token starts with.
pub const PREFIX: &str = "baton_";
/// Hex digits of a credential id.
pub const ID_LEN: usize = 16;
/// Hex digits of a secret.
pub const SECRET_LEN: usize = 64;

/// Why a token or a stored hash could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The text is not `baton_<16 hex>_<64 hex>`.
    #[error("not a Baton person credential")]
    Malformed,
    /// The stored hash is not an argon2 PHC string (a damaged record).
    #[error("the stored credential hash is unreadable")]
    BadHash,
    /// The system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
}

/// A freshly made token and what is stored of it. `Debug` hides the secret.
pub struct Minted {
    /// The credential id (not secret).
    pub id: String,
    /// The whole token: shown once, never stored or logged.
    pub token: String,
    /// argon2id PHC hash of `token`.
    pub hash: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Makes a new token with random id and secret, and its hash.
pub fn mint() -> Result<Minted, TokenError> {
    let mut id = [0u8; ID_LEN / 2];
    let mut secret = [0u8; SECRET_LEN / 2];
    OsRng
        .try_fill_bytes(&mut id)
        .and_then(|_| OsRng.try_fill_bytes(&mut secret))
        .map_err(|e| TokenError::Random(e.to_string()))?;
    let id = hex(&id);
    let token = format!("{PREFIX}{id}_{}", hex(&secret));
    let hash = hash(&token)?;
    Ok(Minted { id, token, hash })
}

/// The argon2id PHC hash of `token`, with a fresh salt and the crate's
/// default (OWASP) cost.
pub fn hash(token: &str) -> Result<String, TokenError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(token.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| TokenError::Random(e.to_string()))
}

/// The credential id of a well-formed token; `Malformed` otherwise.
pub fn id_of(token: &str) -> Result<&str, TokenError> {
    let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(TokenError::Malformed)?;
    if is_hex(id, ID_LEN) && is_hex(secret, SECRET_LEN) {
        Ok(id)
    } else {
        Err(TokenError::Malformed)
    }
}

/// Whether `token` matches the stored PHC `hash` (argon2 compares in
/// constant time). Slow on purpose: run it off the async runtime.
pub fn verify(token: &str, hash: &str) -> Result<bool, TokenError> {
    let parsed = PasswordHash::new(hash).map_err(|_| TokenError::BadHash)?;
    Ok(Argon2::default()
        .verify_password(token.as_bytes(), &parsed)
        .is_ok())
}

/// Whether a credential id is well-formed (it becomes a subject token).
pub fn is_id(id: &str) -> bool {
    is_hex(id, ID_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_has_the_documented_format_and_verifies_against_its_hash() {
        let m = mint().unwrap();
        assert_eq!(m.token.len(), PREFIX.len() + ID_LEN + 1 + SECRET_LEN);
        assert_eq!(id_of(&m.token), Ok(m.id.as_str()));
        assert!(m.hash.starts_with("$argon2id$"), "{}", m.hash);
        assert!(!m.hash.contains(&m.token[PREFIX.len() + ID_LEN + 1..]));
        assert_eq!(verify(&m.token, &m.hash), Ok(true));
        let mut wrong = m.token.clone();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(wrong.len() - 1.., last);
        assert_eq!(verify(&wrong, &m.hash), Ok(false));
        assert!(!format!("{m:?}").contains(&m.token));
    }

    #[test]
    fn two_tokens_never_share_an_id_or_a_secret() {
        let (a, b) = (mint().unwrap(), mint().unwrap());
        assert_ne!(a.id, b.id);
        assert_ne!(a.token, b.token);
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_hashing() {
        let secret = "0".repeat(SECRET_LEN);
        let id = "0123456789abcdef";
        assert_eq!(id_of(&format!("baton_{id}_{secret}")), Ok(id));
        for bad in [
            String::new(),
            "a-shared-token-0000001".into(),
            format!("baton_{id}{secret}"),
            format!("baton_{}_{secret}", &id[1..]),
            format!("baton_{}_{secret}", id.to_uppercase()),
            format!("baton_{id}_{}", &secret[1..]),
            format!("baton_{id}_{secret}_x"),
            format!("BATON_{id}_{secret}"),
            format!("baton_{id}_{}", "g".repeat(SECRET_LEN)),
        ] {
            assert_eq!(id_of(&bad), Err(TokenError::Malformed), "{bad}");
        }
        assert!(is_id(id) && !is_id("x") && !is_id("0123456789abcdef0"));
    }

    #[test]
    fn an_unreadable_hash_is_its_own_error() {
        assert_eq!(verify("baton_x", "not-a-phc"), Err(TokenError::BadHash));
    }
}
