//! The `--control` listener's token (`--control-token-file`): with one, every request
//! must carry `Authorization: Bearer <token>`, compared in constant time
//! (`redpacket-token`, the server's rules).
//!
//! The listener changes the run's rate (`/qps`) and shows its figures, so once it leaves
//! loopback (a Prometheus on another host scrapes `/metrics`) a token is required; the
//! rules for the file are the server's (`--control-token-file` of `redpacket-server`), so
//! one file serves both on a fleet.

use std::net::SocketAddr;
use std::path::Path;

/// The token and its file's rules: the server's own (`redpacket-token`).
pub use redpacket_token::{read as read_token, Token, MIN_TOKEN_LEN};

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
