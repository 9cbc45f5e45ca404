//! One connection's task: wait, read, decode, answer.
//!
//! The task's own state is the socket and at most one partial frame (under 44 bytes,
//! inline). Read and answer buffers live on the stack of a plain function that runs
//! between awaits, so an idle connection costs no heap buffer at all.
//!
//! Readiness is tokio's, cleared by hand after a short read: a read that returned less
//! than the buffer has drained the socket, so the extra read that would only return
//! EAGAIN is skipped (the same trick as an edge-triggered epoll loop in C).

use super::worker::WorkerRef;
use super::ConnKey;
use crate::protocol::{decode_stream, FrameError, Partial, MAX_FRAME_LEN};
use crate::stats::CloseReason;
use std::future::Future;
use std::io::Read;
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Ready;

/// Bytes read per call: many pipelined frames at once.
const READ_BUF: usize = 4096;
/// Answers never exceed 28 bytes for a request of at least 16: room for every answer
/// to one full read plus a carried partial frame.
const OUT_BUF: usize = (READ_BUF + MAX_FRAME_LEN) / 16 * 28 + MAX_FRAME_LEN;

fn close_reason(e: FrameError) -> CloseReason {
    match e {
        FrameError::BadLength { .. } => CloseReason::BadLength,
        FrameError::UnknownCommand { .. } => CloseReason::UnknownCommand,
        FrameError::LengthMismatch { .. } => CloseReason::LengthMismatch,
    }
}

/// A connection's task, written as a plain future rather than an `async fn`: its state
/// is exactly these fields (about 100 bytes), which keeps each task in the smallest
/// allocation tokio makes for it.
pub struct Conn {
    w: WorkerRef,
    fd: AsyncFd<TcpStream>,
    key: ConnKey,
    partial: Partial,
    /// Set once the server shuts down: answer what was read, flush, then close.
    draining: bool,
}

impl Conn {
    pub fn new(w: WorkerRef, fd: AsyncFd<TcpStream>, key: ConnKey) -> Conn {
        Conn {
            w,
            fd,
            key,
            partial: Partial::default(),
            draining: false,
        }
    }

    fn finish(&mut self, reason: CloseReason) -> Poll<()> {
        if reason == CloseReason::SlowReader {
            // Reset instead of a graceful close: the kernel drops what it still holds
            // for a client that does not read, instead of keeping it for the close.
            let _ = socket2::SockRef::from(self.fd.get_ref()).set_linger(Some(Duration::ZERO));
        }
        self.w.borrow_mut().remove_conn(self.key, reason);
        Poll::Ready(())
    }

    /// Shutdown: flush what is queued for as long as the worker's grace period lets
    /// this task run, then close.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if !matches!(self.w.borrow_mut().flush(self.key), Ok(false)) {
                return self.finish(CloseReason::Shutdown);
            }
            match self.fd.poll_write_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(mut g)) => g.clear_ready_matching(Ready::WRITABLE),
                Poll::Ready(Err(_)) => return self.finish(CloseReason::Shutdown),
            }
        }
    }
}

impl Future for Conn {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.draining {
            return this.poll_drain(cx);
        }
        loop {
            let want_write = {
                let mut wk = this.w.borrow_mut();
                let Some(slot) = wk.slot_mut(this.key) else {
                    // The worker already forgot this connection (grace period over).
                    return Poll::Ready(());
                };
                if let Some(reason) = slot.close {
                    drop(wk);
                    if reason == CloseReason::Shutdown {
                        // Answer what the client already sent before closing.
                        let _ = on_readable(&this.w, &this.fd, this.key, &mut this.partial);
                        this.draining = true;
                        return this.poll_drain(cx);
                    }
                    return this.finish(reason);
                }
                if !matches!(&slot.waker, Some(x) if x.will_wake(cx.waker())) {
                    slot.waker = Some(cx.waker().clone());
                }
                slot.out.is_some()
            };
            if want_write {
                if let Poll::Ready(r) = this.fd.poll_write_ready(cx) {
                    let Ok(mut guard) = r else {
                        return this.finish(CloseReason::Reset);
                    };
                    let flushed = this.w.borrow_mut().flush(this.key);
                    match flushed {
                        Ok(true) => {}
                        Ok(false) => guard.clear_ready_matching(Ready::WRITABLE),
                        Err(r) => {
                            drop(guard);
                            return this.finish(r);
                        }
                    }
                    continue;
                }
            }
            // Pending here also when tokio's cooperative budget is spent: a busy
            // connection yields to the others.
            let mut guard = match this.fd.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(_)) => return this.finish(CloseReason::Reset),
            };
            match on_readable(&this.w, &this.fd, this.key, &mut this.partial) {
                Ok(true) => guard.clear_ready_matching(Ready::READABLE),
                Ok(false) => {}
                Err(r) => {
                    drop(guard);
                    return this.finish(r);
                }
            }
        }
    }
}

/// Reads once and answers every whole frame read. `Ok(true)` when the socket is
/// drained (a short read), so readiness can be cleared without another read.
fn on_readable(
    w: &WorkerRef,
    fd: &AsyncFd<TcpStream>,
    key: ConnKey,
    partial: &mut Partial,
) -> Result<bool, CloseReason> {
    let mut buf = [0u8; READ_BUF + MAX_FRAME_LEN];
    let carried = partial.restore(&mut buf);
    let n = match fd.get_ref().read(&mut buf[carried..]) {
        Ok(0) if carried == 0 => return Err(CloseReason::ClientClosed),
        Ok(0) => return Err(CloseReason::Reset),
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(false),
        Err(_) => return Err(CloseReason::Reset),
    };
    let drained = carried + n < buf.len();
    let total = carried + n;

    let mut out = [0u8; OUT_BUF];
    let mut o = 0;
    let mut close = None;
    let mut wk = w.borrow_mut();
    let now = wk.now_unix;
    let decoded = decode_stream(&buf[..total], partial, |d| match wk.handle(key, d.frame) {
        Ok(Some(answer)) => {
            let e = answer.encode(now);
            let b = e.as_bytes();
            out[o..o + b.len()].copy_from_slice(b);
            o += b.len();
            true
        }
        Ok(None) => true,
        Err(r) => {
            close = Some(r);
            false
        }
    });
    if let Err(e) = decoded {
        close = Some(close_reason(e));
    }
    if o > 0 {
        wk.write(key, &out[..o]);
    }
    match close {
        Some(r) => Err(r),
        None => Ok(drained),
    }
}
