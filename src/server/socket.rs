//! Socket I/O, in one place: the epoll instance of a SET and the system calls on a
//! client's socket (read, send, the kernel's unsent bytes, a reset on close).
//!
//! Nothing here knows frames or users. Every descriptor has one owner, an [`OwnedFd`]:
//! the [`Epoll`] owns its instance, a SET's slot owns its connection's socket, and
//! dropping the owner closes the descriptor (which also takes it out of the epoll set:
//! no descriptor is ever duplicated, so the last close is this one).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Readiness a SET asks for on a connection that keeps up: input only.
pub const WANT_READ: u32 = libc::EPOLLIN as u32;
/// Readiness a SET asks for while answers wait for the client to read: input and the
/// room to write. Asked only while the connection lags, so a connection that keeps up
/// is never woken because its socket can take more.
pub const WANT_WRITE: u32 = (libc::EPOLLIN | libc::EPOLLOUT) as u32;
/// Readiness for a connection draining at shutdown: only the room to write (its input
/// is no longer read, so a level-triggered EPOLLIN would wake the SET for nothing).
pub const WANT_WRITE_ONLY: u32 = libc::EPOLLOUT as u32;

/// Bits of an event: input (or an error or hang-up, which a read reports).
pub fn readable(events: u32) -> bool {
    events & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
}

/// Bits of an event: room to write (or an error or hang-up, which a send reports).
pub fn writable(events: u32) -> bool {
    events & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
}

/// One event as the kernel returns it (the data is the SET's key of the connection).
pub type Event = libc::epoll_event;

/// An empty event, to fill a buffer before `epoll_wait`.
pub const NO_EVENT: Event = libc::epoll_event { events: 0, u64: 0 };

/// An epoll instance, level-triggered (the SET's doc says why).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
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

    /// Takes up to `events.len()` ready events without waiting; how many.
    pub fn ready(&self, events: &mut [Event]) -> io::Result<usize> {
        let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: the kernel writes at most `max` events into `events`.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, 0) };
        ready_count(n as i64)
    }

    /// Waits up to `wait` for ready events (the only wait of a SET that may block, and
    /// only with `--epoll-busy-poll`, for at most its microseconds); how many.
    pub fn ready_within(
        &self,
        events: &mut [Event],
        wait: std::time::Duration,
    ) -> io::Result<usize> {
        let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as _,
        };
        // The system call itself (Linux 5.11+), not glibc's wrapper, which needs glibc 2.35.
        // SAFETY: the kernel writes at most `max` events into `events` and reads `ts`; no
        // signal mask.
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                max,
                &ts as *const libc::timespec,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
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

/// One read into `buf`: `Ok(0)` is the client's end of stream.
pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `send(2)` without SIGPIPE and without blocking.
pub fn send(fd: impl AsFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is a live slice for the duration of the call.
    let n = unsafe {
        libc::send(
            fd.as_fd().as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `ioctl(SIOCOUTQNSD)`: the bytes in a TCP socket's send queue not yet sent. These wait
/// because the client's window is closed: it does not read. Bytes sent and not yet
/// acknowledged (SIOCOUTQ counts those too) are in flight, not waiting: a client that
/// reads but acknowledges late (delayed ACKs, a long path) must not be taken for a
/// slow reader.
pub fn unsent(fd: impl AsFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQNSD writes one int into `n`.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::SIOCOUTQNSD as _, &mut n) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.max(0) as usize)
    }
}

/// Makes the coming close a reset: the kernel drops what it still holds for a client
/// that does not read, instead of keeping it for a graceful close.
pub fn reset_on_close(fd: &OwnedFd) {
    let _ = socket2::SockRef::from(fd).set_linger(Some(std::time::Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    fn send_reports_errors_instead_of_signalling() {
        // A descriptor that is no socket: an error value, no SIGPIPE, no panic.
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(send(&f, b"x").is_err());
        assert!(unsent(&f).is_err());
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
        assert_eq!(ep.ready(&mut evs).unwrap(), 0, "nothing to read yet");
        std::io::Write::write_all(&mut client, b"hello").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(ep.ready(&mut evs).unwrap(), 1);
        let (bits, data) = (evs[0].events, evs[0].u64);
        assert!(readable(bits) && !writable(bits));
        assert_eq!(data, 7 << 32 | 3);
        // Level-triggered: still ready until read.
        assert_eq!(ep.ready(&mut evs).unwrap(), 1);
        let mut buf = [0u8; 16];
        assert_eq!(read(&server, &mut buf).unwrap(), 5);
        assert_eq!(ep.ready(&mut evs).unwrap(), 0);
        ep.modify(server.as_fd(), WANT_WRITE, 1).unwrap();
        assert_eq!(ep.ready(&mut evs).unwrap(), 1);
        let bits = evs[0].events;
        assert!(writable(bits));
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
        assert_eq!(
            ep.ready_within(&mut evs, Duration::from_micros(500))
                .unwrap(),
            0
        );
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        std::io::Write::write_all(&mut client, b"x").unwrap();
        assert_eq!(
            ep.ready_within(&mut evs, Duration::from_secs(2)).unwrap(),
            1
        );
    }

    #[test]
    fn what_the_kernel_has_not_sent_is_measured() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        // A receive window of a few KB that nobody reads: the rest waits in our queue.
        socket2::SockRef::from(&client)
            .set_recv_buffer_size(4096)
            .unwrap();
        let (server, _) = l.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        assert_eq!(unsent(&server).unwrap(), 0);
        let chunk = [7u8; 1024];
        let mut sent = 0;
        while sent < 256 * 1024 {
            match send(&server, &chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        let q = unsent(&server).unwrap();
        assert!(q > 0 && q <= sent, "{q} of {sent} bytes unsent");
        drop(client);
    }
}
