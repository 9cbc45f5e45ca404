//! The `--control` listener's handler: `GET /qps?qps=X` sets the target rate during a
//! load phase, `GET /stats` shows the live figures, `GET /metrics` the run so far in
//! Prometheus's text format ([`super::live`]). The HTTP around it is
//! [`crate::http::serve`]'s.

use super::live::Live;
use crate::http::{self, Answer};
use crate::prometheus;
use crate::run_state::{RunState, MODE_LOAD};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;

/// The listener's handler: `/qps`, `/stats` and `/metrics`.
pub(super) fn control(shared: &RunState, live: &Mutex<Live>, target: &str) -> Answer {
    let path = target.split('?').next().unwrap_or("");
    if path == "/metrics" {
        let body = match live.lock() {
            Ok(l) => l.render(shared.connected(), shared.inflight()),
            Err(_) => return (500, "{\"error\":\"no record\"}".to_string()).into(),
        };
        return Answer {
            status: 200,
            content_type: prometheus::CONTENT_TYPE,
            body,
        };
    }
    match path {
        "/qps" => match http::query_param(target, "qps").map(crate::plan::parse_rate) {
            Some(Some(q)) if shared.mode.load(Relaxed) == MODE_LOAD => {
                shared.set_qps(q);
                (200, format!("{{\"qps\":{q}}}"))
            }
            Some(Some(_)) => (409, "{\"error\":\"no load phase is running\"}".into()),
            Some(None) => (
                400,
                "{\"error\":\"qps must be a rate such as 3000 or 2.5k\"}".into(),
            ),
            None => (200, format!("{{\"qps\":{}}}", shared.qps())),
        },
        "/stats" => (
            200,
            format!(
                "{{\"qps\":{},\"connected\":{},\"inflight\":{},\"phase\":{}}}",
                shared.qps(),
                shared.connected(),
                shared.inflight(),
                shared.phase.load(Relaxed)
            ),
        ),
        _ => (
            404,
            "{\"error\":\"try /qps?qps=X, /stats or /metrics\"}".into(),
        ),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::UserRange;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn control_sets_the_rate_only_during_load() {
        let sh = RunState::new(UserRange::new(0, 10), &[UserRange::new(0, 10)]);
        let live = Mutex::new(Live::default());
        let control = |sh: &RunState, t: &str| {
            let a = control(sh, &live, t);
            (a.status, a.body)
        };
        assert_eq!(control(&sh, "/qps?qps=5").0, 409);
        sh.mode.store(MODE_LOAD, Relaxed);
        assert_eq!(control(&sh, "/qps?qps=2.5k").0, 200);
        assert_eq!(sh.qps(), 2500.0);
        assert_eq!(control(&sh, "/qps?qps=x").0, 400);
        assert_eq!(control(&sh, "/qps").0, 200);
        assert_eq!(sh.qps(), 2500.0);
        assert_eq!(control(&sh, "/nope").0, 404);
    }

    /// The live listener with the real handler, fed what a hostile or careless client
    /// sends: only a well-formed GET with a sane rate changes anything.
    #[test]
    fn the_live_qps_handler_refuses_hostile_requests() {
        use std::io::{Read, Write};
        let sh = Arc::new(RunState::new(
            UserRange::new(0, 10),
            &[UserRange::new(0, 10)],
        ));
        sh.mode.store(MODE_LOAD, Relaxed);
        sh.set_qps(1000.0);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = sh.clone();
        let live = Mutex::new(Live::default());
        http::serve(l, http::Limits::default(), None, move |t| {
            control(&h, &live, t)
        })
        .unwrap();
        let get = |path: &str| http::get(addr, path, Duration::from_secs(2)).unwrap();
        for bad in [
            "/qps?qps=1e300",
            "/qps?qps=101m",
            "/qps?qps=-5",
            "/qps?qps=NaN",
            "/qps?qps=inf",
            "/qps?qps=",
            "/qps?qps=%31%30",
            "/qps?qps=99999999999999999999999999999999999999999",
            "/qps?qps=5k5",
        ] {
            let (status, body) = get(bad);
            assert_eq!(status, 400, "{bad}: {body}");
            assert_eq!(sh.qps(), 1000.0, "{bad} changed the rate");
        }
        let raw = |bytes: &[u8]| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s.write_all(bytes).unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        };
        let post = raw(b"POST /qps?qps=7 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let utf8 = raw(b"GET /qps?qps=\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(!utf8.starts_with("HTTP/1.1 200"), "{utf8}");
        assert_eq!(sh.qps(), 1000.0);
        // The listener still serves, and a sane rate is taken.
        assert_eq!(get("/qps?qps=2.5k").0, 200);
        assert_eq!(sh.qps(), 2500.0);
        assert_eq!(get("/stats").0, 200);
        let (status, metrics) = get("/metrics");
        assert_eq!(status, 200);
        assert!(
            metrics.contains("\nredpacket_loadgen_users_connected 0\n"),
            "{metrics}"
        );
        let head = raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
    }

    /// With a token, no path answers without `Authorization: Bearer <token>`, and a
    /// refused `/qps` changes nothing.
    #[test]
    fn with_a_token_every_path_needs_it() {
        use std::io::{Read, Write};
        let sh = Arc::new(RunState::new(
            UserRange::new(0, 10),
            &[UserRange::new(0, 10)],
        ));
        sh.mode.store(MODE_LOAD, Relaxed);
        sh.set_qps(1000.0);
        let d = redpacket_testkit::scratch::fresh_in(&std::env::temp_dir(), "loadgen", "ctl-token");
        std::fs::write(d.join("t"), "s3cret-s3cret-s3cret\n").unwrap();
        let token = crate::token::read_token(&d.join("t")).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = sh.clone();
        let live = Mutex::new(Live::default());
        http::serve(l, http::Limits::default(), Some(token), move |t| {
            control(&h, &live, t)
        })
        .unwrap();
        let ask = |path: &str, auth: &str| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
            s.write_all(req.as_bytes()).unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        };
        for path in ["/metrics", "/stats", "/qps?qps=7", "/nope"] {
            for auth in [
                "",
                "Authorization: Bearer s3cret-s3cret-s3cre\r\n",
                "Authorization: Basic s3cret-s3cret-s3cret\r\n",
            ] {
                let a = ask(path, auth);
                assert!(a.starts_with("HTTP/1.1 401"), "{path} {auth}: {a}");
                assert!(
                    a.to_ascii_lowercase().contains("www-authenticate: bearer"),
                    "{a}"
                );
            }
        }
        assert_eq!(sh.qps(), 1000.0, "a refused /qps changed the rate");
        let ok = "Authorization: Bearer s3cret-s3cret-s3cret\r\n";
        let m = ask("/metrics", ok);
        assert!(
            m.starts_with("HTTP/1.1 200") && m.contains("redpacket_loadgen_users_connected"),
            "{m}"
        );
        assert!(ask("/qps?qps=7", ok).starts_with("HTTP/1.1 200"));
        assert_eq!(sh.qps(), 7.0);
    }
}
