//! Thin, safe wrappers over the socket and epoll calls the engine makes; the only
//! module of the load generator that speaks libc's socket flags and errno values.
//!
//! The engine drives nonblocking sockets from one epoll set per worker thread: a user
//! costs a few dozen bytes of state and no task, buffer or waker, which is how one
//! process holds hundreds of thousands of users in well under 1 KiB each.
//!
//! Descriptors are owned: a socket is an [`OwnedFd`] held by its user's connection
//! state and closed when that drops; the calls below take a [`BorrowedFd`], so none of
//! them can be handed a stray integer. Errors are an [`Errno`] the engine asks
//! questions of (would it block? which [`Failure`]?) rather than compares with libc's
//! constants.

use crate::metrics::Failure;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// An errno value from a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(i32);

impl Errno {
    /// Nothing to read, or the socket's send buffer is full (a short write counts as
    /// this too).
    pub fn would_block(self) -> bool {
        self.0 == libc::EAGAIN || self.0 == libc::EWOULDBLOCK
    }
    /// A signal interrupted the call; trying again is fine.
    pub fn interrupted(self) -> bool {
        self.0 == libc::EINTR
    }
    /// The connection failure this errno means, as counted and printed.
    pub fn failure(self) -> Failure {
        match self.0 {
            libc::ECONNREFUSED => Failure::Refused,
            libc::ETIMEDOUT => Failure::Timeout,
            libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED => Failure::Reset,
            libc::EADDRNOTAVAIL | libc::EADDRINUSE => Failure::NoPorts,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => Failure::NoFiles,
            _ => Failure::Other,
        }
    }
    fn of(e: &std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// The calling thread's errno.
fn errno() -> Errno {
    Errno::of(&std::io::Error::last_os_error())
}

fn setsockopt_int(fd: BorrowedFd, level: i32, opt: i32, v: i32) -> Result<(), Errno> {
    // SAFETY: fd is a live socket (borrowed); the option value is a valid c_int.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Opens a nonblocking TCP socket to `dst`, bound to `src` (port chosen at connect
/// time, IP_BIND_ADDRESS_NO_PORT) when given, and starts connecting. Returns the
/// socket, or the errno of the step that failed (the socket is then closed).
pub fn start_connect(dst: SocketAddr, src: Option<IpAddr>) -> Result<OwnedFd, Errno> {
    let domain = socket2::Domain::for_address(dst);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM.nonblocking().cloexec(), None)
        .map_err(|e| Errno::of(&e))?;
    sock.set_tcp_nodelay(true).map_err(|e| Errno::of(&e))?;
    // Best effort: without stamps, answers are timed when the worker reads them.
    let _ = setsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
    if let Some(src) = src {
        if src.is_ipv4() {
            setsockopt_int(
                sock.as_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                1,
            )?;
        }
        sock.bind(&SocketAddr::new(src, 0).into())
            .map_err(|e| Errno::of(&e))?;
    }
    match sock.connect(&dst.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(Errno::of(&e)),
    }
    Ok(sock.into())
}

/// The pending error of a connecting socket: `None` once it is connected.
pub fn so_error(fd: BorrowedFd) -> Option<Errno> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: fd is a live socket; v and len are valid out-pointers of the right size.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    if r != 0 {
        Some(errno())
    } else if v != 0 {
        Some(Errno(v))
    } else {
        None
    }
}

/// Writes all of `buf` or fails: frames are a few dozen bytes, so a short write means the
/// peer has stopped reading, which the engine treats as a broken connection (reported
/// as would-block).
pub fn write_all(fd: BorrowedFd, buf: &[u8]) -> Result<(), Errno> {
    // SAFETY: fd is live; buf is a valid slice for its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n == buf.len() as isize {
        Ok(())
    } else if n < 0 {
        Err(errno())
    } else {
        Err(Errno(libc::EAGAIN))
    }
}

/// Reads into `buf`, also returning the kernel's arrival time of the data (unix ns,
/// CLOCK_REALTIME) when the socket has timestamps on (SO_TIMESTAMPNS, set by
/// [`start_connect`]), so a worker that sleeps through a tick still times each answer
/// when it arrived. `Ok((0, _))` is end of stream.
pub fn read_stamped(fd: BorrowedFd, buf: &mut [u8]) -> Result<(usize, Option<u64>), Errno> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one timespec control message (aligned as cmsghdr wants).
    let mut control = [0u64; 8];
    // SAFETY: zeroed msghdr is valid; pointers below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: fd is live; msg describes valid buffers.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(errno());
    }
    let mut stamp = None;
    // SAFETY: walking the control buffer the kernel filled, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                if ts.tv_sec > 0 {
                    stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

/// Lets the calling thread's timed sleeps end at their deadline rather than up to
/// 50 us (the default timer slack) past it. Best effort.
pub fn tight_timer_slack() {
    // SAFETY: prctl with integer arguments only affects this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// What the engine waits for on a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Connecting: writable (connected or failed), readable, or hung up.
    Connect,
    /// Connected: readable or hung up.
    Read,
}

impl Interest {
    fn bits(self) -> u32 {
        match self {
            Interest::Connect => (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP) as u32,
            Interest::Read => (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
        }
    }
}

/// One ready socket: the key it was registered with and what it is ready for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    pub key: u64,
    pub writable: bool,
    /// Hung up or in error.
    pub hangup: bool,
}

/// A buffer of ready events for [`Epoll::wait`].
pub struct Events(Vec<libc::epoll_event>);

impl Events {
    pub fn with_capacity(n: usize) -> Events {
        Events(vec![libc::epoll_event { events: 0, u64: 0 }; n.max(1)])
    }
    pub fn capacity(&self) -> usize {
        self.0.len()
    }
    /// The first `n` events a wait filled.
    pub fn ready(&self, n: usize) -> impl Iterator<Item = Ready> + '_ {
        self.0[..n.min(self.0.len())].iter().map(|e| Ready {
            key: e.u64,
            writable: e.events & libc::EPOLLOUT as u32 != 0,
            hangup: e.events & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0,
        })
    }
}

/// One epoll set, closed when dropped.
pub struct Epoll {
    fd: OwnedFd,
    pwait2: bool,
}

impl Epoll {
    pub fn new() -> std::io::Result<Epoll> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by epoll_create1 and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd, pwait2: true })
    }

    fn ctl(&self, op: i32, fd: BorrowedFd, interest: Interest, key: u64) -> Result<(), Errno> {
        let mut ev = libc::epoll_event {
            events: interest.bits(),
            u64: key,
        };
        // SAFETY: both descriptors are live; ev is a valid epoll_event.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) };
        if r == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    /// Adds `fd` to the set; its events carry `key`. Closing `fd` removes it.
    pub fn add(&self, fd: BorrowedFd, interest: Interest, key: u64) -> Result<(), Errno> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest, key)
    }

    /// Changes what `fd` (already in the set) is waited for.
    pub fn modify(&self, fd: BorrowedFd, interest: Interest, key: u64) -> Result<(), Errno> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest, key)
    }

    /// Waits up to `timeout_ns` (microsecond precision with epoll_pwait2, else rounded up
    /// to a millisecond). Returns how many events were filled.
    pub fn wait(&mut self, events: &mut Events, timeout_ns: u64) -> usize {
        let events = &mut events.0;
        let max = events.len().min(i32::MAX as usize) as i32;
        if self.pwait2 {
            let ts = libc::timespec {
                tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
            };
            // SAFETY: events is valid for `max` entries; ts outlives the call; no sigmask.
            let r = unsafe {
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
            if r >= 0 {
                return r as usize;
            }
            if errno().0 != libc::ENOSYS {
                return 0;
            }
            self.pwait2 = false;
        }
        let ms = timeout_ns.div_ceil(1_000_000).min(1000) as i32;
        // SAFETY: events is valid for `max` entries.
        let r = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, ms) };
        r.max(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classes() {
        assert_eq!(Errno(libc::ECONNREFUSED).failure(), Failure::Refused);
        assert_eq!(Errno(libc::EADDRNOTAVAIL).failure(), Failure::NoPorts);
        assert_eq!(Errno(libc::EMFILE).failure(), Failure::NoFiles);
        assert_eq!(Errno(libc::EPIPE).failure(), Failure::Reset);
        assert_eq!(Errno(libc::EINVAL).failure(), Failure::Other);
        assert!(Errno(libc::EAGAIN).would_block() && !Errno(libc::EINTR).would_block());
    }

    /// A socket connects to a live listener, is reported writable by the set, writes,
    /// reads what the peer sends with a kernel stamp, and is closed by being dropped.
    #[test]
    fn connect_write_read_and_close_by_drop() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = start_connect(l.local_addr().unwrap(), None).unwrap();
        let mut ep = Epoll::new().unwrap();
        ep.add(fd.as_fd(), Interest::Connect, 7).unwrap();
        let mut evs = Events::with_capacity(4);
        let n = ep.wait(&mut evs, 2_000_000_000);
        let r: Vec<Ready> = evs.ready(n).collect();
        assert_eq!((r.len(), r[0].key, r[0].writable), (1, 7, true), "{r:?}");
        assert_eq!(so_error(fd.as_fd()), None);
        ep.modify(fd.as_fd(), Interest::Read, 7).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        write_all(fd.as_fd(), b"ping").unwrap();
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        peer.write_all(b"pong").unwrap();
        assert_eq!(ep.wait(&mut evs, 2_000_000_000), 1);
        let mut buf = [0u8; 16];
        let (n, stamp) = read_stamped(fd.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"pong");
        // TCP over loopback carries no receive stamp on Linux 6.18 (the kernel clears
        // it); where one comes, it is a recent wall-clock time.
        if let Some(ns) = stamp {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            assert!(now.abs_diff(ns) < 10_000_000_000, "{ns} vs {now}");
        }
        assert!(read_stamped(fd.as_fd(), &mut buf)
            .unwrap_err()
            .would_block());
        drop(fd);
        // The peer sees the end of stream: dropping the OwnedFd closed the socket.
        peer.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        assert_eq!(peer.read(&mut buf).unwrap(), 0);
    }
}
