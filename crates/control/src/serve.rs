//! The control server's connections, served by hand so that a flood of slow connections
//! (a slowloris) can neither lock an operator out nor take the clients' descriptors.
//!
//! - A cap, `--control-max-conns`: when full, the oldest connection is closed to make
//!   room. An attacker's connections then push out each other, while an operator's
//!   request, which arrives whole in one packet, is answered as soon as it is read.
//! - hyper's own header-read timeout, `--control-header-timeout`: from connecting (or from
//!   the previous answer) to a whole request head. Extra header lines do not extend it.
//! - An idle timeout, `--control-idle-timeout`: no byte read or written for that long
//!   (a body sent slowly, an answer never read) closes the connection.
//! - A spare descriptor ([`redpacket_sys::spare`]): when the process is out of them, a
//!   pending connection is accepted and closed at once instead of spinning on EMFILE.
//!
//! The control thread thus holds at most `max_conns + EVICT_BURST` connection
//! descriptors, and the server sets that many apart from the clients' cap.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use redpacket_formats::server::Counters;
use redpacket_sys::spare::{out_of_files, Refusal, Spare};
use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The control server's connection cap and timeouts (`--control-max-conns`,
/// `--control-header-timeout`, `--control-idle-timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlLimits {
    pub max_conns: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// How many connections the accept loop takes in a row (its home says why).
pub use redpacket_host::reserve::EVICT_BURST;

/// Live connections, oldest first (ids grow with each accept).
type Table = Arc<Mutex<BTreeMap<u64, AbortHandle>>>;

fn lock(t: &Table) -> std::sync::MutexGuard<'_, BTreeMap<u64, AbortHandle>> {
    // Taken only on the control thread, never across an await; a poisoned map still
    // holds valid handles.
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves `app` on `listener` until `stop`; then closes every control connection.
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    limits: ControlLimits,
    counters: Arc<Counters>,
    stop: CancellationToken,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    // SAFETY: the TcpListener owns its descriptor until it is dropped with the AsyncFd.
    let listener = unsafe { AsyncFd::register(listener)? };
    let table: Table = Arc::default();
    let mut spare = Spare::new();
    let mut next_id = 0u64;
    let mut backoff = Duration::from_millis(5);
    'serve: loop {
        let mut guard = tokio::select! {
            g = listener.readable() => g?,
            _ = stop.cancelled() => break 'serve,
        };
        let mut in_a_row = 0;
        loop {
            match listener.get_ref().accept() {
                Ok((stream, _)) => {
                    backoff = Duration::from_millis(5);
                    Counters::inc(&counters.conns);
                    let id = next_id;
                    next_id += 1;
                    admit(id, stream, &app, limits, &counters, &table);
                    in_a_row += 1;
                    if in_a_row == EVICT_BURST {
                        // Let the new connections read their requests (and the
                        // evicted ones close) before accepting more.
                        tokio::task::yield_now().await;
                        in_a_row = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if out_of_files(&e) => match spare.refuse_one(listener.get_ref()) {
                    Refusal::Refused => Counters::inc(&counters.refused),
                    Refusal::NothingPending => {
                        guard.clear_ready();
                        break;
                    }
                    Refusal::NoSpare => {
                        Counters::inc(&counters.accept_errors);
                        drop(guard);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(500));
                        break;
                    }
                },
                Err(e) => {
                    Counters::inc(&counters.accept_errors);
                    tracing::warn!("control: accept failed: {e}; retrying in {backoff:?}");
                    drop(guard);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    break;
                }
            }
        }
    }
    let live = std::mem::take(&mut *lock(&table));
    for h in live.into_values() {
        h.abort();
    }
    Ok(())
}

/// Makes room under the cap (closing the oldest), then serves the connection in a task.
fn admit(
    id: u64,
    stream: std::net::TcpStream,
    app: &Router,
    limits: ControlLimits,
    counters: &Arc<Counters>,
    table: &Table,
) {
    let stream = match stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(stream))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("control: cannot take a connection in: {e}");
            return;
        }
    };
    let mut live = lock(table);
    while live.len() >= limits.max_conns {
        let Some((_, oldest)) = live.pop_first() else {
            break;
        };
        oldest.abort();
        Counters::inc(&counters.evicted);
    }
    let task = tokio::spawn(connection(
        id,
        stream,
        app.clone(),
        limits,
        counters.clone(),
        table.clone(),
    ));
    live.insert(id, task.abort_handle());
}

/// Removes a connection from the table when its task ends, however it ends.
struct Forget(Table, u64);

impl Drop for Forget {
    fn drop(&mut self) {
        lock(&self.0).remove(&self.1);
    }
}

async fn connection(
    id: u64,
    stream: tokio::net::TcpStream,
    app: Router,
    limits: ControlLimits,
    counters: Arc<Counters>,
    table: Table,
) {
    let _forget = Forget(table, id);
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Watched {
        inner: stream,
        start,
        last: last.clone(),
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(conn);
    loop {
        let idle_at = start + Duration::from_millis(last.load(Relaxed)) + limits.idle_timeout;
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        Counters::inc(&counters.header_timeouts);
                    } else {
                        tracing::debug!("control connection: {e}");
                    }
                }
                return;
            }
            _ = tokio::time::sleep_until(idle_at) => {
                let quiet = start + Duration::from_millis(last.load(Relaxed));
                if Instant::now() >= quiet + limits.idle_timeout {
                    Counters::inc(&counters.idle_timeouts);
                    return;
                }
            }
        }
    }
}

/// A socket that notes when a byte last moved (milliseconds since `start`).
struct Watched {
    inner: tokio::net::TcpStream,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl Watched {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
