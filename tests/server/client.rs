//! A blocking test client that speaks through the crate's own codec.

use redpacket_protocol::{decode, unix_now, Frame};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn login(addr: SocketAddr, user: u32) -> Client {
        let mut c = Client::connect(addr);
        c.send(Frame::LoginRequest { user });
        assert_eq!(
            c.recv(),
            Some(Frame::LoginResponse { user, result: 0 }),
            "login of {user}"
        );
        c
    }

    /// A second handle on the same connection (e.g. to read on another thread).
    pub fn try_clone(&self) -> Client {
        Client {
            stream: self.stream.try_clone().expect("clone"),
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, f: Frame) {
        self.stream
            .write_all(f.encode(unix_now()).as_bytes())
            .unwrap();
    }

    pub fn send_raw(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(b)
    }

    /// The next frame within 3 s; `None` if the server closed or nothing came.
    pub fn recv(&mut self) -> Option<Frame> {
        self.recv_within(Duration::from_secs(3))
    }

    pub fn recv_within(&mut self, t: Duration) -> Option<Frame> {
        let deadline = Instant::now() + t;
        loop {
            if let Ok(Some(d)) = decode(&self.buf) {
                self.buf.drain(..d.len);
                return Some(d.frame);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut b = [0u8; 4096];
            match self.stream.read(&mut b) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }

    /// Whether the server closed this connection (EOF or reset) within `t`.
    pub fn closed_within(&mut self, t: Duration) -> bool {
        let deadline = Instant::now() + t;
        let mut b = [0u8; 4096];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
        false
    }
}

/// `GET path` on the control address: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path)
}

/// `METHOD path` on the control address: (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect control");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

pub fn stats(addr: SocketAddr) -> redpacket_formats::server::Snapshot {
    let (code, body) = http_get(addr, "/stats");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("stats JSON")
}

/// Polls `/stats` until `pred` holds (at most 10 s).
pub fn wait_stats(
    addr: SocketAddr,
    what: &str,
    pred: impl Fn(&redpacket_formats::server::Snapshot) -> bool,
) -> redpacket_formats::server::Snapshot {
    redpacket_testkit::wait::poll(Duration::from_secs(10), Duration::from_millis(20), || {
        let s = stats(addr);
        pred(&s).then_some(s)
    })
    .unwrap_or_else(|| panic!("timed out waiting for {what}: {:?}", stats(addr)))
}
