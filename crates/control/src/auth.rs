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

pub use redpacket_token::Token;

/// What the middleware compares against, and where it counts refusals.
pub struct Gate {
    pub token: Option<Token>,
    pub metrics_open: bool,
    pub counters: Arc<Counters>,
}

/// The value of the request's `Authorization` header, if any.
fn authorization(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())
}

/// The middleware: passes the request on, or answers 401.
pub async fn require_token(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let Some(token) = &gate.token else {
        return next.run(req).await;
    };
    if gate.metrics_open && req.uri().path() == "/metrics" {
        return next.run(req).await;
    }
    if token.admits(authorization(req.headers())) {
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

    /// The rules themselves are `redpacket_token`'s; here, that the header is the one read.
    #[test]
    fn the_authorization_header_carries_the_token() {
        let t = Token::new(b"0123456789abcdefXYZ".to_vec());
        let mut h = HeaderMap::new();
        assert!(!t.admits(authorization(&h)));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  0123456789abcdefXYZ "),
        );
        assert!(t.admits(authorization(&h)));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic 0123456789abcdefXYZ"),
        );
        assert!(!t.admits(authorization(&h)));
    }
}
