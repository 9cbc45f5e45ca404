//! The HTTP this tool speaks: GET to the servers' control addresses (campaigns, and
//! `/stats` for the money check), and its own `--control` listener (`/qps`, `/stats`,
//! `/metrics`).
//!
//! Both sides are hyper's HTTP/1.1, the crate the server's control address is served
//! with (same versions in `Cargo.lock`), driven by a tokio runtime of one thread that is
//! never a worker's: parsing, chunked bodies and malformed input are hyper's well-tested
//! code, not ours. A blocking client such as `ureq` would have fit the client side as
//! well, but would add a second HTTP stack to the build for a handful of calls, while
//! hyper is already compiled for the server and serves the listener too.
//!
//! Bounds, since either side may be hostile or broken:
//! - [`get`]: the whole exchange (connect, request, head, body) within `timeout`; a body
//!   of at most [`MAX_BODY`] bytes that must be UTF-8; anything else is an error line.
//! - [`serve`]: one request per connection, GET only; at most `max_conns` connections
//!   at once (more are closed on accept); a request head within `header_timeout` and the
//!   whole connection within `conn_timeout`; heads of at most 16 KiB; with a
//!   [`Token`], every request without `Authorization: Bearer <token>` answered 401
//!   before the handler sees it.

use crate::token::Token;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1 as server_http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// Largest answer body [`get`] accepts, bytes (a server's `/stats` is about 4 KiB).
pub const MAX_BODY: usize = 4 << 20;

/// `GET path` on `addr`; returns (status, body). The whole exchange is bounded by
/// `timeout`.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    rt.block_on(async {
        match tokio::time::timeout(timeout, exchange(addr, path)).await {
            Ok(r) => r.map_err(|e| format!("{addr}{path}: {e}")),
            Err(_) => Err(format!(
                "{addr}{path}: no whole answer within {:.1} s",
                timeout.as_secs_f64()
            )),
        }
    })
}

async fn exchange(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // The connection's driver ends with the exchange (or with the runtime).
    tokio::spawn(conn);
    let req = Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("answer body: {e}"))?
        .to_bytes();
    let body = String::from_utf8(body.to_vec()).map_err(|_| "answer body is not UTF-8")?;
    Ok((status, body))
}

/// The query value of `key` in a request target like `/qps?qps=3000&x=1`.
pub fn query_param<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let (_, q) = target.split_once('?')?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// How much a client of [`serve`] may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more are closed as they are accepted.
    pub max_conns: usize,
    /// From connecting to a whole request head.
    pub header_timeout: Duration,
    /// From connecting to the end of the answer.
    pub conn_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_conns: 32,
            header_timeout: Duration::from_secs(2),
            conn_timeout: Duration::from_secs(10),
        }
    }
}

/// What a handler of [`serve`] answers: a status, the body's media type and the body.
/// A `(status, body)` pair is a JSON answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl From<(u16, String)> for Answer {
    fn from((status, body): (u16, String)) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body,
        }
    }
}

/// Serves GET requests on `listener` in a thread of its own; `handle(target)` returns
/// the [`Answer`] (or a (status, JSON body) pair) for a request target such as
/// `/qps?qps=3000`. With a `token`, a request must carry it (`Authorization: Bearer`)
/// to reach `handle` at all: every path alike, since `/qps` changes the run.
pub fn serve<A: Into<Answer>>(
    listener: TcpListener,
    limits: Limits,
    token: Option<Token>,
    handle: impl Fn(&str) -> A + Send + Sync + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = Arc::new(move |t: &str| handle(t).into());
    let token = Arc::new(token);
    std::thread::Builder::new()
        .name("loadgen-control".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("loadgen: control listener: {e}");
                        return;
                    }
                };
                let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_conns.max(1)));
                loop {
                    let stream = match listener.accept().await {
                        Ok((s, _)) => s,
                        Err(_) => {
                            // Out of descriptors or the like: let it pass, do not spin.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        continue; // over the cap: closed at once (dropped)
                    };
                    tokio::spawn(connection(
                        stream,
                        limits,
                        token.clone(),
                        handle.clone(),
                        slot,
                    ));
                }
            })
        })?;
    Ok(())
}

async fn connection<H>(
    stream: tokio::net::TcpStream,
    limits: Limits,
    token: Arc<Option<Token>>,
    handle: Arc<H>,
    _slot: tokio::sync::OwnedSemaphorePermit,
) where
    H: Fn(&str) -> Answer + Send + Sync + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let answer = respond(&*handle, (*token).as_ref(), &req);
        async move { Ok::<_, Infallible>(answer) }
    });
    let conn = server_http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(false)
        .max_buf_size(16 << 10)
        .serve_connection(TokioIo::new(stream), service);
    // A connection that overstays is dropped, which closes it.
    let _ = tokio::time::timeout(limits.conn_timeout, conn).await;
}

fn respond<H: Fn(&str) -> Answer>(
    handle: &H,
    token: Option<&Token>,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let unauthorized = token.is_some_and(|t| !t.admits(authorization));
    let a = if unauthorized {
        Answer {
            status: 401,
            content_type: "text/plain; charset=utf-8",
            body:
                "this control address needs Authorization: Bearer <token> (--control-token-file)\n"
                    .into(),
        }
    } else if req.method() == Method::GET {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        handle(target)
    } else {
        (405, "{\"error\":\"only GET\"}".to_string()).into()
    };
    let mut r = Response::new(Full::new(Bytes::from(a.body)));
    *r.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(a.content_type),
    );
    if unauthorized {
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    #[test]
    fn query_params() {
        assert_eq!(query_param("/qps?qps=3000", "qps"), Some("3000"));
        assert_eq!(query_param("/qps?a=1&qps=2", "qps"), Some("2"));
        assert_eq!(query_param("/qps", "qps"), None);
        assert_eq!(query_param("/qps?qps", "qps"), None);
    }

    #[test]
    fn serve_and_get_round_trip() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        serve(l, Limits::default(), None, |t| {
            (200, format!("{{\"t\":\"{t}\"}}"))
        })
        .unwrap();
        let (status, body) = get(addr, "/qps?qps=5", Duration::from_secs(2)).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, "{\"t\":\"/qps?qps=5\"}");
    }

    /// A server that reads the request, then answers `raw` (or nothing) and holds the
    /// connection for `hold`.
    fn hostile(raw: &'static [u8], hold: Duration) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(raw);
                std::thread::sleep(hold);
            }
        });
        addr
    }

    fn get_from(raw: &'static [u8]) -> Result<(u16, String), String> {
        get(
            hostile(raw, Duration::ZERO),
            "/stats",
            Duration::from_secs(2),
        )
    }

    #[test]
    fn chunks_are_joined_even_when_a_character_spans_two() {
        // "é" is two bytes, each in a chunk of its own: the old hand-written client
        // sliced a &str there and panicked.
        let r = get_from(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\xc3\r\n1\r\n\xa9\r\n2\r\n{}\r\n0\r\n\r\n",
        );
        assert_eq!(r, Ok((200, "é{}".to_string())));
    }

    #[test]
    fn a_hostile_server_s_answers_are_errors_not_panics() {
        let cases: [(&[u8], &str); 7] = [
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                "a chunk size that is not hex",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nab",
                "a chunk size past u64",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc",
                "a chunk cut short by the close",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                "a body shorter than its length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\xff\xfe\xfd\xfc",
                "a body that is not UTF-8",
            ),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not HTTP at all"),
            (b"", "a close without an answer"),
        ];
        for (raw, what) in cases {
            let r = get_from(raw);
            assert!(r.is_err(), "{what}: {r:?}");
        }
        assert!(
            get_from(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\xff\xfe\xfd\xfc")
                .unwrap_err()
                .contains("not UTF-8")
        );
    }

    #[test]
    fn a_body_past_the_limit_is_refused() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    MAX_BODY + 1
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&vec![b'x'; MAX_BODY + 1]);
            }
        });
        let r = get(addr, "/stats", Duration::from_secs(5));
        assert!(r.is_err(), "{:?}", r.map(|(s, b)| (s, b.len())));
    }

    #[test]
    fn a_server_that_never_answers_costs_the_timeout_and_no_more() {
        for raw in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab",
        ] {
            let addr = hostile(raw, Duration::from_secs(30));
            let t = Instant::now();
            let r = get(addr, "/stats", Duration::from_millis(300));
            let took = t.elapsed();
            assert!(r.unwrap_err().contains("no whole answer within 0.3 s"));
            assert!(took < Duration::from_secs(2), "{took:?}");
        }
    }

    /// Raw bytes to a listener; returns what came back before it closed (or 3 s).
    fn raw_request(addr: SocketAddr, bytes: &[u8]) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn hostile_requests_are_refused_and_the_listener_keeps_serving() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let limits = Limits {
            max_conns: 4,
            header_timeout: Duration::from_millis(300),
            conn_timeout: Duration::from_secs(2),
        };
        serve(l, limits, None, |t| (200, format!("{{\"t\":{:?}}}", t))).unwrap();
        let post = raw_request(
            addr,
            b"POST /qps?qps=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let garbage = raw_request(addr, b"\x00\xff\xfe GET\r\n\r\n");
        assert!(
            garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
            "{garbage}"
        );
        let bad_target = raw_request(addr, b"GET /qps?qps=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            bad_target.is_empty() || bad_target.starts_with("HTTP/1.1 400"),
            "{bad_target}"
        );
        let mut huge = b"GET /qps HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 64 << 10));
        huge.extend(b"\r\n\r\n");
        let huge = raw_request(addr, &huge);
        assert!(!huge.starts_with("HTTP/1.1 200"), "{huge}");
        // A connection that never sends its head is closed after the header timeout.
        let t = Instant::now();
        assert_eq!(raw_request(addr, b"GET /qps HT"), "");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // Slow clients filling every slot lock others out only until their timeout.
        let idle: Vec<_> = (0..4)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(600));
        let (status, body) = get(addr, "/qps?qps=2", Duration::from_secs(2)).unwrap();
        assert_eq!((status, body.as_str()), (200, "{\"t\":\"/qps?qps=2\"}"));
        drop(idle);
    }
}
