//! epoll, in one place: every epoll system call of both programs is in this file.
//!
//! The server's workers and the load generator's workers each own one [`Epoll`] and
//! wait on it; every socket is watched edge-triggered (the server's `set.rs` says why). An
//! instance is an [`OwnedFd`]: dropping it closes the descriptor, and closing a socket
//! takes it out of every set (no descriptor is ever duplicated, so the last close is
//! the socket's own).
//! Errors are `std::io::Error`, as everywhere in this crate; a wait interrupted by a
//! signal returns no events rather than an error.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

/// Edge-triggered: an event when readiness comes, not at every wait while it lasts. The
/// reader reads until a read comes up short (or keeps the connection on a list of its
/// own), and the kernel neither puts a reported socket back on its ready list nor
/// polls it again at the next wait.
const EDGE: u32 = libc::EPOLLET as u32;
/// Input only: what a server's SET asks of a connection that keeps up.
pub const WANT_READ: u32 = libc::EPOLLIN as u32 | EDGE;
/// Readiness a SET asks for while answers wait for the client to read: input and the
/// room to write. Asked only while the connection lags, so a connection that keeps up
/// is never woken because its socket can take more.
pub const WANT_WRITE: u32 = (libc::EPOLLIN | libc::EPOLLOUT) as u32 | EDGE;
/// Readiness for a connection draining at shutdown: only the room to write (its input
/// is no longer read).
pub const WANT_WRITE_ONLY: u32 = libc::EPOLLOUT as u32 | EDGE;

/// Bits of an event: input (or an error or hang-up, which a read reports).
pub fn readable(events: u32) -> bool {
    events & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
}

/// Bits of an event: room to write (or an error or hang-up, which a send reports).
pub fn writable(events: u32) -> bool {
    events & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
}

/// One event as the kernel returns it (the data is what [`Epoll::add`] was given).
pub type Event = libc::epoll_event;

/// An empty event, to fill a buffer before `epoll_wait`.
pub const NO_EVENT: Event = libc::epoll_event { events: 0, u64: 0 };

/// Input, output, or the peer's hang-up: what a connecting client socket waits for.
pub const WANT_CONNECT: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP) as u32 | EDGE;
/// Input or the peer's hang-up: what a connected client socket waits for.
pub const WANT_READ_HANGUP: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 | EDGE;

/// Bits of an event: room to write, and nothing else (a client's connect finished).
pub fn can_write(events: u32) -> bool {
    events & libc::EPOLLOUT as u32 != 0
}

/// Bits of an event: hung up or in error.
pub fn hung_up(events: u32) -> bool {
    events & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
}

/// The key an event carries (what [`Epoll::add`] was given).
pub fn key(event: &Event) -> u64 {
    event.u64
}

/// The readiness bits of an event.
pub fn bits(event: &Event) -> u32 {
    event.events
}

/// An epoll instance (its sockets edge-triggered: the SET's doc says why).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
    /// `epoll_pwait2` exists (until a call says ENOSYS).
    pwait2: AtomicBool,
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointer arguments; a descriptor or -1 comes back.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            pwait2: AtomicBool::new(true),
        })
    }

    fn ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, events: u32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is a live event the kernel reads during the call.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Watches `fd` for `events`; each event carries `data`.
    pub fn add(&self, fd: BorrowedFd<'_>, events: u32, data: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, data)
    }

    /// Changes what `fd` is watched for.
    pub fn modify(&self, fd: BorrowedFd<'_>, events: u32, data: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, data)
    }

    /// Waits up to `wait` for ready events; how many. Microsecond precision with
    /// `epoll_pwait2` (Linux 5.11+, called directly: glibc's wrapper needs 2.35); on a
    /// kernel without it (ENOSYS, remembered) `epoll_wait`, the wait rounded up to a
    /// millisecond.
    pub fn wait(&self, events: &mut [Event], wait: Duration) -> io::Result<usize> {
        self.wait_up_to(events, Some(wait))
    }

    /// As [`Epoll::wait`]; `None` waits until an event comes, however long.
    pub fn wait_up_to(&self, events: &mut [Event], wait: Option<Duration>) -> io::Result<usize> {
        let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
        if self.pwait2.load(Relaxed) {
            let ts = wait.map(|w| libc::timespec {
                tv_sec: w.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                tv_nsec: w.subsec_nanos() as _,
            });
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: the kernel writes at most `max` events into `events` and reads
            // the timespec (if any: null waits without end); no signal mask.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.fd.as_raw_fd(),
                    events.as_mut_ptr(),
                    max,
                    ts_ptr,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
                return ready_count(n as i64);
            }
            self.pwait2.store(false, Relaxed);
        }
        let ms = wait.map_or(-1, |w| {
            w.as_nanos()
                .div_ceil(1_000_000)
                .min(libc::c_int::MAX as u128) as libc::c_int
        });
        // SAFETY: the kernel writes at most `max` events into `events`.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, ms) };
        ready_count(n as i64)
    }

    /// Epoll busy polling for this instance (`EPIOCSPARAMS`, Linux 6.9+): when a wait on
    /// it with a timeout finds nothing ready, the kernel polls the device queue (NAPI)
    /// its sockets came from for up to `usecs` microseconds, `budget` packets a poll,
    /// instead of sleeping until an interrupt. The error says which call the kernel
    /// refused and why.
    pub fn set_busy_poll(&self, p: BusyPoll) -> io::Result<()> {
        let params = EpollParams {
            busy_poll_usecs: p.usecs,
            busy_poll_budget: p.budget,
            prefer_busy_poll: u8::from(p.prefer),
            pad: 0,
        };
        // SAFETY: EPIOCSPARAMS reads one `struct epoll_params` (8 bytes) from `params`.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), EPIOCSPARAMS as _, &params) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        let why = match e.raw_os_error() {
            Some(libc::ENOTTY) => "this kernel has no epoll busy polling (Linux 6.9 or newer)",
            Some(libc::EPERM) => "a budget above 64 needs CAP_NET_ADMIN",
            Some(libc::EINVAL) => "the kernel refused the values",
            _ => "refused",
        };
        Err(io::Error::new(
            e.kind(),
            format!(
                "epoll busy polling (EPIOCSPARAMS usecs={} budget={} prefer={}): {why}: {e}",
                p.usecs, p.budget, p.prefer
            ),
        ))
    }
}

/// An epoll wait's return: the events ready, none when a signal interrupted it, or the
/// error (read from errno, so call it right after the wait).
fn ready_count(n: i64) -> io::Result<usize> {
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::Interrupted {
        Ok(0)
    } else {
        Err(e)
    }
}

/// Parameters of epoll busy polling (see [`Epoll::set_busy_poll`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyPoll {
    pub usecs: u32,
    pub budget: u16,
    pub prefer: bool,
}

/// `struct epoll_params` of `<linux/eventpoll.h>`.
#[repr(C)]
struct EpollParams {
    busy_poll_usecs: u32,
    busy_poll_budget: u16,
    prefer_busy_poll: u8,
    pad: u8,
}

/// `_IOW(0x8A, 0x01, struct epoll_params)`: direction write (1 << 30), size 8 << 16, type
/// 0x8A << 8, number 1.
const EPIOCSPARAMS: u64 = (1 << 30) | (8 << 16) | (0x8A << 8) | 1;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn the_ioctl_number_is_the_kernels() {
        // <linux/eventpoll.h>: #define EPIOCSPARAMS _IOW(EPOLL_IOC_TYPE, 0x01, struct epoll_params)
        assert_eq!(EPIOCSPARAMS, 0x4008_8a01);
        assert_eq!(std::mem::size_of::<EpollParams>(), 8);
    }

    #[test]
    fn busy_polling_is_set_or_refused_with_the_reason() {
        let ep = Epoll::new().unwrap();
        let ok = BusyPoll {
            usecs: 50,
            budget: 8,
            prefer: false,
        };
        match ep.set_busy_poll(ok) {
            Ok(()) => {}
            // Before Linux 6.9 the ioctl does not exist: the error says so.
            Err(e) => assert!(e.to_string().contains("Linux 6.9"), "{e}"),
        }
        // Values the kernel refuses on any version: a clear error, never a silent ok.
        let bad = BusyPoll {
            usecs: u32::MAX,
            ..ok
        };
        let e = ep.set_busy_poll(bad).unwrap_err().to_string();
        assert!(e.contains("EPIOCSPARAMS usecs=4294967295"), "{e}");
    }

    #[test]
    fn an_epoll_set_reports_its_sockets_by_their_data() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        let server = OwnedFd::from(server);
        let ep = Epoll::new().unwrap();
        ep.add(server.as_fd(), WANT_READ, 7 << 32 | 3).unwrap();
        let mut evs = [NO_EVENT; 4];
        assert_eq!(
            ep.wait(&mut evs, Duration::ZERO).unwrap(),
            0,
            "nothing to read yet"
        );
        std::io::Write::write_all(&mut client, b"hello").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(ep.wait(&mut evs, Duration::ZERO).unwrap(), 1);
        let (bits, data) = (evs[0].events, evs[0].u64);
        assert!(readable(bits) && !writable(bits));
        assert_eq!(data, 7 << 32 | 3);
        // Edge-triggered: reported once, not again while the bytes wait unread...
        assert_eq!(ep.wait(&mut evs, Duration::ZERO).unwrap(), 0);
        // ...and again when more arrive.
        std::io::Write::write_all(&mut client, b"again").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(ep.wait(&mut evs, Duration::ZERO).unwrap(), 1);
        let mut buf = [0u8; 16];
        assert_eq!(crate::socket::read(&server, &mut buf).unwrap(), 10);
        assert_eq!(ep.wait(&mut evs, Duration::ZERO).unwrap(), 0);
        // A change of what is watched reports what is ready now.
        ep.modify(server.as_fd(), WANT_WRITE, 1).unwrap();
        assert_eq!(ep.wait(&mut evs, Duration::ZERO).unwrap(), 1);
        let bits = evs[0].events;
        assert!(writable(bits));
        assert_eq!(ep.wait(&mut evs, Duration::ZERO).unwrap(), 0, "once");
    }

    #[test]
    fn a_bounded_wait_returns_what_arrives_or_nothing_in_time() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        let server = OwnedFd::from(server);
        let ep = Epoll::new().unwrap();
        ep.add(server.as_fd(), WANT_READ, 1).unwrap();
        let mut evs = [NO_EVENT; 4];
        let t = std::time::Instant::now();
        assert_eq!(ep.wait(&mut evs, Duration::from_micros(500)).unwrap(), 0);
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        std::io::Write::write_all(&mut client, b"x").unwrap();
        assert_eq!(ep.wait(&mut evs, Duration::from_secs(2)).unwrap(), 1);
    }
}
