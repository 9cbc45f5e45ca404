//! Thin, safe-ish wrappers over the socket and epoll calls the engine makes.
//!
//! The engine drives raw nonblocking file descriptors from one epoll set per worker
//! thread: a user costs a few dozen bytes of state and no task, buffer or waker, which is
//! how one process holds hundreds of thousands of users in well under 1 KiB each.

use std::net::{IpAddr, SocketAddr};

/// The calling thread's errno.
pub fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn setsockopt_int(fd: i32, level: i32, opt: i32, v: i32) -> Result<(), i32> {
    // SAFETY: fd is a socket we own; the option value is a valid c_int.
    let r = unsafe {
        libc::setsockopt(
            fd,
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
/// time, IP_BIND_ADDRESS_NO_PORT) when given, and starts connecting. Returns the fd,
/// or the errno of the step that failed (the fd is then closed).
pub fn start_connect(dst: SocketAddr, src: Option<IpAddr>) -> Result<i32, i32> {
    let domain = socket2::Domain::for_address(dst);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM.nonblocking().cloexec(), None)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    // Best effort: without stamps, answers are timed when the worker reads them.
    let _ = enable_rx_timestamps(fd);
    if let Some(src) = src {
        if src.is_ipv4() {
            setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
        }
        sock.bind(&SocketAddr::new(src, 0).into())
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    }
    match sock.connect(&dst.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
    }
    use std::os::fd::IntoRawFd;
    Ok(sock.into_raw_fd())
}

/// The pending error of a connecting socket (0 = connected).
pub fn so_error(fd: i32) -> i32 {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: v and len are valid out-pointers of the right size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    if r == 0 {
        v
    } else {
        errno()
    }
}

pub fn close(fd: i32) {
    // SAFETY: the caller owns fd and forgets it after this call.
    unsafe { libc::close(fd) };
}

/// Writes all of `buf` or fails: frames are a few dozen bytes, so a short write means the
/// peer has stopped reading, which the engine treats as a broken connection.
pub fn write_all(fd: i32, buf: &[u8]) -> Result<(), i32> {
    // SAFETY: buf is a valid slice for its length.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n == buf.len() as isize {
        Ok(())
    } else if n < 0 {
        Err(errno())
    } else {
        Err(libc::EAGAIN)
    }
}

/// Asks the kernel to stamp received data with its arrival time (SO_TIMESTAMPNS), so a
/// worker that sleeps through a tick still times each answer when it arrived.
pub fn enable_rx_timestamps(fd: i32) -> Result<(), i32> {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// Reads into `buf` like [`read`], also returning the kernel's arrival time of the
/// data (unix ns, CLOCK_REALTIME) when the socket has timestamps on.
pub fn read_stamped(fd: i32, buf: &mut [u8]) -> Result<(usize, Option<u64>), i32> {
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
    // SAFETY: msg describes valid buffers.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
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

/// Reads into `buf`: `Ok(0)` is end of stream, `Err(EAGAIN)` nothing to read.
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, i32> {
    // SAFETY: buf is a valid mutable slice for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

/// One epoll set.
pub struct Epoll {
    fd: i32,
    pwait2: bool,
}

impl Epoll {
    pub fn new() -> std::io::Result<Epoll> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Epoll { fd, pwait2: true })
    }

    pub fn ctl(&self, op: i32, fd: i32, events: u32, data: u64) -> Result<(), i32> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: ev is a valid epoll_event.
        let r = unsafe { libc::epoll_ctl(self.fd, op, fd, &mut ev) };
        if r == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    /// Waits up to `timeout_ns` (microsecond precision with epoll_pwait2, else rounded up
    /// to a millisecond). Returns how many events were filled.
    pub fn wait(&mut self, events: &mut [libc::epoll_event], timeout_ns: u64) -> usize {
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
                    self.fd,
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
            if errno() != libc::ENOSYS {
                return 0;
            }
            self.pwait2 = false;
        }
        let ms = timeout_ns.div_ceil(1_000_000).min(1000) as i32;
        // SAFETY: events is valid for `max` entries.
        let r = unsafe { libc::epoll_wait(self.fd, events.as_mut_ptr(), max, ms) };
        r.max(0) as usize
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        close(self.fd);
    }
}
