//! Who may use the control port: with a token configured, every request must carry
//! `Authorization: Bearer <token>` (compared in constant time), except `/metrics` when
//! `--control-metrics-open` says a scraper may read it without one.
//!
//! Without a token the port is open, which the configuration allows only on loopback.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use redpacket_formats::server::Counters;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// A control token; its `Debug` never shows it. Which tokens are acceptable (length,
/// characters) is the command line's rule (`crate::config`).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

impl Token {
    pub fn new(bytes: Vec<u8>) -> Token {
        Token(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// What the middleware compares against, and where it counts refusals.
pub struct Gate {
    pub token: Option<Token>,
    pub metrics_open: bool,
    pub counters: Arc<Counters>,
}

/// Whether `presented` is the token. Constant time in the token's content (only a
/// difference in length returns early, and the length is not the secret).
pub fn token_matches(presented: &[u8], token: &Token) -> bool {
    presented.ct_eq(token.as_bytes()).into()
}

/// The credentials of an `Authorization: Bearer <token>` header (the scheme name is
/// case-insensitive, as HTTP authentication schemes are).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = (v.get(..7)?, &v[7..]);
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// The middleware: passes the request on, or answers 401.
pub async fn require_token(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let Some(token) = &gate.token else {
        return next.run(req).await;
    };
    if gate.metrics_open && req.uri().path() == "/metrics" {
        return next.run(req).await;
    }
    if bearer(req.headers()).is_some_and(|p| token_matches(p, token)) {
        return next.run(req).await;
    }
    Counters::inc(&gate.counters.unauthorized);
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "this control port needs Authorization: Bearer <token> (--control-token-file)\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn token(s: &str) -> Token {
        Token::new(s.as_bytes().to_vec())
    }

    #[test]
    fn only_the_exact_token_matches() {
        let t = token("0123456789abcdefXYZ");
        assert!(token_matches(b"0123456789abcdefXYZ", &t));
        assert!(
            !token_matches(b"0123456789abcdefXYz", &t),
            "last byte differs"
        );
        assert!(
            !token_matches(b"1123456789abcdefXYZ", &t),
            "first byte differs"
        );
        assert!(!token_matches(b"0123456789abcdefXY", &t), "a prefix");
        assert!(!token_matches(b"0123456789abcdefXYZZ", &t), "longer");
        assert!(!token_matches(b"", &t));
        assert_eq!(format!("{t:?}"), "Token(..)", "never printed");
    }

    #[test]
    fn bearer_reads_the_scheme_case_insensitively() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some(&b"abc"[..]));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h), Some(&b"abc"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bear"));
        assert_eq!(bearer(&h), None);
    }
}
