//! A wake-up another thread can send to a thread asleep in `epoll_wait`: an eventfd
//! registered in its epoll set. A load-generator worker sleeps until its next request
//! or event rather than waking every few milliseconds to look at shared state; the
//! coordinator wakes it when that state changes (a phase, a rate, the mode).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A counter the kernel holds; readable (in epoll) while non-zero.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A new waker, nonblocking and closed on exec.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: eventfd takes no pointer; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Makes the descriptor readable, waking whoever waits on it. Never blocks: a
    /// counter already at its maximum is as readable as one at 1.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to a descriptor we own.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Takes the wake-ups sent so far (the descriptor is no longer readable).
    pub fn take(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64 from a descriptor we own.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut n as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoll::{Epoll, NO_EVENT, WANT_READ};
    use std::time::{Duration, Instant};

    #[test]
    fn a_wake_ends_a_wait_and_take_rearms_it() {
        let ep = Epoll::new().unwrap();
        let w = Waker::new().unwrap();
        ep.add(w.as_fd(), WANT_READ, 7).unwrap();
        let mut ev = [NO_EVENT; 4];
        assert_eq!(ep.wait(&mut ev, Duration::ZERO).unwrap(), 0);
        w.wake();
        w.wake();
        let t = Instant::now();
        assert_eq!(ep.wait(&mut ev, Duration::from_secs(5)).unwrap(), 1);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(crate::epoll::key(&ev[0]), 7);
        w.take();
        assert_eq!(ep.wait(&mut ev, Duration::ZERO).unwrap(), 0);
    }
}
