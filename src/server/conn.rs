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
use crate::protocol::{decode, FrameError, MAX_FRAME_LEN};
use crate::stats::CloseReason;
use std::io::Read;
use std::net::TcpStream;
use std::task::Poll;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

/// Bytes read per call: many pipelined frames at once.
const READ_BUF: usize = 4096;
/// Answers never exceed 28 bytes for a request of at least 16: room for every answer
/// to one full read plus a carried partial frame.
const OUT_BUF: usize = (READ_BUF + MAX_FRAME_LEN) / 16 * 28 + MAX_FRAME_LEN;

/// A frame cut by the end of a read, kept until the rest arrives.
struct Partial {
    bytes: [u8; MAX_FRAME_LEN],
    len: u8,
}

impl Default for Partial {
    fn default() -> Partial {
        Partial {
            bytes: [0; MAX_FRAME_LEN],
            len: 0,
        }
    }
}

enum Event<'a> {
    Read(AsyncFdReadyGuard<'a, TcpStream>),
    Write(AsyncFdReadyGuard<'a, TcpStream>),
    Close(CloseReason),
    /// The worker already forgot this connection (grace period over).
    Gone,
}

fn close_reason(e: FrameError) -> CloseReason {
    match e {
        FrameError::BadLength { .. } => CloseReason::BadLength,
        FrameError::UnknownCommand { .. } => CloseReason::UnknownCommand,
        FrameError::LengthMismatch { .. } => CloseReason::LengthMismatch,
    }
}

pub async fn serve(w: WorkerRef, fd: AsyncFd<TcpStream>, key: ConnKey) {
    let mut partial = Partial::default();
    let reason = loop {
        let ev = std::future::poll_fn(|cx| {
            let mut wk = w.borrow_mut();
            let Some(slot) = wk.slot_mut(key) else {
                return Poll::Ready(Event::Gone);
            };
            if let Some(r) = slot.close {
                return Poll::Ready(Event::Close(r));
            }
            if !matches!(&slot.waker, Some(x) if x.will_wake(cx.waker())) {
                slot.waker = Some(cx.waker().clone());
            }
            let want_write = !slot.out.is_empty();
            drop(wk);
            if want_write {
                if let Poll::Ready(r) = fd.poll_write_ready(cx) {
                    return Poll::Ready(r.map_or(Event::Close(CloseReason::Reset), Event::Write));
                }
            }
            fd.poll_read_ready(cx)
                .map(|r| r.map_or(Event::Close(CloseReason::Reset), Event::Read))
        })
        .await;
        match ev {
            Event::Read(mut guard) => match on_readable(&w, &fd, key, &mut partial) {
                Ok(drained) => {
                    if drained {
                        guard.clear_ready_matching(tokio::io::Ready::READABLE);
                    }
                }
                Err(r) => break r,
            },
            Event::Write(mut guard) => match w.borrow_mut().flush(key) {
                Ok(true) => {}
                Ok(false) => guard.clear_ready_matching(tokio::io::Ready::WRITABLE),
                Err(r) => break r,
            },
            Event::Close(r) => break r,
            Event::Gone => return,
        }
    };
    if reason == CloseReason::Shutdown {
        // Answer what the client already sent, then flush for as long as the worker's
        // grace period lets this task run.
        let _ = on_readable(&w, &fd, key, &mut partial);
        loop {
            match w.borrow_mut().flush(key) {
                Ok(false) => {}
                _ => break,
            }
            match fd.writable().await {
                Ok(mut g) => g.clear_ready(),
                Err(_) => break,
            }
        }
    }
    w.borrow_mut().remove_conn(key, reason);
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
    let carried = usize::from(partial.len);
    buf[..carried].copy_from_slice(&partial.bytes[..carried]);
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
    let mut at = 0;
    let mut close = None;
    let mut wk = w.borrow_mut();
    let now = wk.now_unix;
    loop {
        match decode(&buf[at..total]) {
            Ok(Some(d)) => {
                at += d.len;
                match wk.handle(key, d.frame) {
                    Ok(Some(answer)) => {
                        let e = answer.encode(now);
                        let b = e.as_bytes();
                        out[o..o + b.len()].copy_from_slice(b);
                        o += b.len();
                    }
                    Ok(None) => {}
                    Err(r) => {
                        close = Some(r);
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                close = Some(close_reason(e));
                break;
            }
        }
    }
    let rest = total - at;
    if close.is_none() {
        // decode() asks for more only while less than one frame (<= 44 bytes) is left.
        partial.bytes[..rest].copy_from_slice(&buf[at..total]);
        partial.len = rest as u8;
    }
    if o > 0 {
        wk.write(key, &out[..o]);
    }
    match close {
        Some(r) => Err(r),
        None => Ok(drained),
    }
}
