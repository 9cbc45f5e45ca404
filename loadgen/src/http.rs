//! The little HTTP this tool speaks: GET to the server's control address, and its own
//! `/qps?qps=X` listener.
//!
//! Both sides are one request per connection with a short body, so a few dozen lines of
//! std networking do it; pulling an HTTP stack into the load generator would cost more
//! build time than it saves. The listener runs on its own thread, off the workers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// `GET path` on `addr`; returns (status, body). Bounded by `timeout` per step.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut raw = Vec::new();
    s.take(4 << 20)
        .read_to_end(&mut raw)
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr}{path}: no HTTP header in answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("{addr}{path}: bad status line"))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// Joins a chunked body (hyper answers HTTP/1.1 with chunks when it does not know the
/// length up front).
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The query value of `key` in a request target like `/qps?qps=3000&x=1`.
pub fn query_param<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let (_, q) = target.split_once('?')?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// Serves GET requests on `listener` in a thread; `handle(target)` returns
/// (status, JSON body). Each connection is read with a short timeout and answered once.
pub fn serve(
    listener: TcpListener,
    handle: impl Fn(&str) -> (u16, String) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("loadgen-control".into())
        .spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 2048];
                let mut n = 0;
                while n < buf.len() {
                    match s.read(&mut buf[n..]) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let req = String::from_utf8_lossy(&buf[..n]);
                let mut parts = req.split_whitespace();
                let (status, body) = match (parts.next(), parts.next()) {
                    (Some("GET"), Some(target)) => handle(target),
                    _ => (400, "{\"error\":\"only GET\"}".to_string()),
                };
                let reason = if status == 200 { "OK" } else { "Error" };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_and_chunks() {
        assert_eq!(query_param("/qps?qps=3000", "qps"), Some("3000"));
        assert_eq!(query_param("/qps?a=1&qps=2", "qps"), Some("2"));
        assert_eq!(query_param("/qps", "qps"), None);
        assert_eq!(dechunk("4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"), "abcdef");
    }

    #[test]
    fn serve_and_get_round_trip() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        serve(l, |t| (200, format!("{{\"t\":\"{t}\"}}"))).unwrap();
        let (status, body) = get(addr, "/qps?qps=5", Duration::from_secs(2)).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, "{\"t\":\"/qps?qps=5\"}");
    }
}
