//! The `--control` listener's token (`--control-token-file`): with one, every request
//! must carry `Authorization: Bearer <token>`, compared in constant time.
//!
//! The listener changes the run's rate (`/qps`) and shows its figures, so once it leaves
//! loopback (a Prometheus on another host scrapes `/metrics`) a token is required; the
//! rules for the file are the server's (`--control-token-file` of `redpacket-server`), so
//! one file serves both on a fleet.

use std::net::SocketAddr;
use std::path::Path;
use subtle::ConstantTimeEq;

/// Shortest token accepted (the server's minimum too).
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
    /// Whether an `Authorization` header's value is `Bearer <this token>` (the scheme
    /// name case-insensitive, as HTTP's are). Constant time in the token's content; only
    /// a difference in length returns early, and the length is not the secret.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(v) = authorization else {
            return false;
        };
        let (Some(scheme), Some(rest)) = (v.get(..7), v.get(7..)) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer ") && bool::from(rest.trim_ascii().ct_eq(&self.0))
    }
}

/// Reads a token file: its content without surrounding whitespace, at least
/// [`MIN_TOKEN_LEN`] printable ASCII bytes without spaces.
pub fn read_token(path: &Path) -> Result<Token, String> {
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

/// The `--control` listener as asked: its address and the token (read from `file`),
/// refused when the address is not loopback and no token is given.
pub fn control_token(addr: SocketAddr, file: Option<&Path>) -> Result<Option<Token>, String> {
    let token = file.map(read_token).transpose()?;
    if token.is_none() && !addr.ip().to_canonical().is_loopback() {
        return Err(format!(
            "--control {addr} is not a loopback address: give --control-token-file FILE \
             (the listener changes the run's rate and shows its figures)"
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token file holding `content`, in a fresh folder per tag.
    fn file(tag: &str, content: &[u8]) -> std::path::PathBuf {
        let d = redpacket_testkit::scratch::fresh_in(&std::env::temp_dir(), "loadgen", tag);
        let p = d.join("token");
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn a_token_is_read_trimmed_and_checked() {
        let p = file("token-read", b"  0123456789abcdefXYZ\n");
        let t = read_token(&p).unwrap();
        assert_eq!(format!("{t:?}"), "Token(..)", "never printed");
        assert!(t.admits(Some(b"Bearer 0123456789abcdefXYZ")));
        assert!(t.admits(Some(b"bearer 0123456789abcdefXYZ ")));
        assert!(!t.admits(Some(b"Bearer 0123456789abcdefXY")));
        assert!(!t.admits(Some(b"Bearer 0123456789abcdefXYZW")));
        assert!(!t.admits(Some(b"Basic 0123456789abcdefXYZ")));
        assert!(!t.admits(Some(b"Bearer")));
        assert!(!t.admits(None));
        let short = file("token-short", b"short\n");
        assert!(read_token(&short).unwrap_err().contains("need at least 16"));
        let spaced = file("token-spaced", b"0123456789 abcdefXYZ");
        assert!(read_token(&spaced).unwrap_err().contains("printable ASCII"));
        let missing = std::env::temp_dir().join("loadgen-token-none/none");
        assert!(read_token(&missing)
            .unwrap_err()
            .contains("--control-token-file"));
    }

    #[test]
    fn a_listener_off_loopback_needs_a_token() {
        let p = file("token-listen", b"0123456789abcdefXYZ");
        let lo: SocketAddr = "127.0.0.1:9188".parse().unwrap();
        let fleet: SocketAddr = "198.18.1.21:9188".parse().unwrap();
        assert_eq!(control_token(lo, None).unwrap(), None);
        assert!(control_token(lo, Some(&p)).unwrap().is_some());
        let e = control_token(fleet, None).unwrap_err();
        assert!(
            e.contains("not a loopback address") && e.contains("--control-token-file"),
            "{e}"
        );
        assert!(control_token(fleet, Some(&p)).unwrap().is_some());
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:9188".parse().unwrap();
        assert_eq!(control_token(mapped, None).unwrap(), None);
    }
}
