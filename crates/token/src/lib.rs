//! The control token (`--control-token-file`), one home for the server's control port
//! and the load generator's `--control` listener, so one file serves both on a fleet:
//! what a token file must hold ([`read`]), and whether a request's `Authorization`
//! header carries it ([`Token::admits`]), compared in constant time.

use std::path::Path;
use subtle::ConstantTimeEq;

/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// A control token; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    pub fn new(bytes: Vec<u8>) -> Token {
        Token(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `presented` is the token. Constant time in the token's content (only a
    /// difference in length returns early, and the length is not the secret).
    pub fn matches(&self, presented: &[u8]) -> bool {
        presented.ct_eq(&self.0).into()
    }

    /// Whether an `Authorization` header's value is `Bearer <this token>`.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        authorization
            .and_then(bearer)
            .is_some_and(|p| self.matches(p))
    }
}

/// The credentials of an `Authorization: Bearer <token>` header's value (the scheme name
/// is case-insensitive, as HTTP authentication schemes are).
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = (value.get(..7)?, value.get(7..)?);
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// Reads a token file: its content without surrounding whitespace, at least
/// [`MIN_TOKEN_LEN`] printable ASCII bytes without spaces.
pub fn read(path: &Path) -> Result<Token, String> {
    let raw =
        std::fs::read(path).map_err(|e| format!("--control-token-file {}: {e}", path.display()))?;
    let t = raw.trim_ascii();
    if t.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "--control-token-file {}: the token has {} bytes, need at least {MIN_TOKEN_LEN}",
            path.display(),
            t.len()
        ));
    }
    if t.iter().any(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "--control-token-file {}: the token must be printable ASCII without spaces",
            path.display()
        ));
    }
    Ok(Token(t.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_after_bearer_is_admitted() {
        let t = Token::new(b"0123456789abcdefXYZ".to_vec());
        assert_eq!(format!("{t:?}"), "Token(..)", "never printed");
        assert!(t.admits(Some(b"Bearer 0123456789abcdefXYZ")));
        assert!(t.admits(Some(b"bearer 0123456789abcdefXYZ ")));
        assert!(!t.admits(Some(b"Bearer 0123456789abcdefXY")), "a prefix");
        assert!(!t.admits(Some(b"Bearer 0123456789abcdefXYZW")));
        assert!(!t.admits(Some(b"Bearer 1123456789abcdefXYZ")));
        assert!(!t.admits(Some(b"Basic 0123456789abcdefXYZ")));
        assert!(!t.admits(Some(b"Bearer")));
        assert!(!t.admits(None));
    }

    #[test]
    fn a_token_file_is_trimmed_and_checked() {
        let d = std::env::temp_dir().join(format!("redpacket-token-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = |name: &str, content: &[u8]| {
            let p = d.join(name);
            std::fs::write(&p, content).unwrap();
            p
        };
        let t = read(&f("ok", b"  0123456789abcdefXYZ\n")).unwrap();
        assert_eq!(t.as_bytes(), b"0123456789abcdefXYZ");
        assert!(read(&f("short", b"short\n"))
            .unwrap_err()
            .contains("need at least 16"));
        assert!(read(&f("spaced", b"0123456789 abcdefXYZ"))
            .unwrap_err()
            .contains("printable ASCII"));
        assert!(read(&d.join("none"))
            .unwrap_err()
            .contains("--control-token-file"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
