//! The system calls on a TCP socket that both programs make past what `std` and
//! socket2 offer: the server's nonblocking read, send without SIGPIPE, the kernel's
//! unsent bytes and a reset on close; the load generator's nonblocking connect from a
//! chosen source address, its pending error, whole-frame writes and stamped reads.
//!
//! Every call takes a borrowed or owned descriptor (never a bare integer) and returns a
//! `std::io::Error` read from errno; the caller decides what an error means
//! ([`would_block`] for the common question).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Nothing to read, or the send buffer is full (a short whole-frame write counts too).
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// One read into `buf`: `Ok(0)` is the client's end of stream. `recv(2)`, not `read(2)`:
/// the socket call skips the file layer's position lock and access notification.
pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
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

fn setsockopt_int(fd: BorrowedFd, level: i32, opt: i32, v: i32) -> io::Result<()> {
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
        Err(io::Error::last_os_error())
    }
}

/// Opens a nonblocking TCP socket to `dst`, bound to `src` (port chosen at connect
/// time, IP_BIND_ADDRESS_NO_PORT) when given, and starts connecting. Returns the
/// socket, or the error of the step that failed (the socket is then closed).
pub fn start_connect(dst: SocketAddr, src: Option<IpAddr>) -> io::Result<OwnedFd> {
    let domain = socket2::Domain::for_address(dst);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM.nonblocking().cloexec(), None)?;
    sock.set_tcp_nodelay(true)?;
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
        sock.bind(&SocketAddr::new(src, 0).into())?;
    }
    match sock.connect(&dst.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(sock.into())
}

/// The pending error of a connecting socket: `None` once it is connected.
pub fn so_error(fd: BorrowedFd) -> Option<io::Error> {
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
        Some(io::Error::last_os_error())
    } else if v != 0 {
        Some(io::Error::from_raw_os_error(v))
    } else {
        None
    }
}

/// Writes all of `buf` or fails: frames are a few dozen bytes, so a short write means the
/// peer has stopped reading, which the engine treats as a broken connection (reported
/// as would-block). Through [`send`]: no SIGPIPE, and the socket call rather than
/// `write(2)`'s file layer.
pub fn write_all(fd: BorrowedFd, buf: &[u8]) -> io::Result<()> {
    if send(fd, buf)? == buf.len() {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EAGAIN))
    }
}

/// Reads into `buf`, also returning the kernel's arrival time of the data (unix ns,
/// CLOCK_REALTIME) when the socket has timestamps on (SO_TIMESTAMPNS, set by
/// [`start_connect`]), so a worker that sleeps through a tick still times each answer
/// when it arrived. `Ok((0, _))` is end of stream.
pub fn read_stamped(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
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
        return Err(io::Error::last_os_error());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoll::{Epoll, NO_EVENT, WANT_CONNECT, WANT_READ_HANGUP};
    use std::time::Duration;

    #[test]
    fn send_reports_errors_instead_of_signalling() {
        // A descriptor that is no socket: an error value, no SIGPIPE, no panic.
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(send(&f, b"x").is_err());
        assert!(unsent(&f).is_err());
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
    /// A socket connects to a live listener, is reported writable by the set, writes,
    /// reads what the peer sends with a kernel stamp, and is closed by being dropped.
    #[test]
    fn connect_write_read_and_close_by_drop() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = start_connect(l.local_addr().unwrap(), None).unwrap();
        let ep = Epoll::new().unwrap();
        ep.add(fd.as_fd(), WANT_CONNECT, 7).unwrap();
        let mut evs = [NO_EVENT; 4];
        let n = ep.wait(&mut evs, Duration::from_secs(2)).unwrap();
        assert_eq!(n, 1);
        assert_eq!(crate::epoll::key(&evs[0]), 7);
        assert!(crate::epoll::can_write(crate::epoll::bits(&evs[0])));
        assert!(so_error(fd.as_fd()).is_none());
        ep.modify(fd.as_fd(), WANT_READ_HANGUP, 7).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        write_all(fd.as_fd(), b"ping").unwrap();
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        peer.write_all(b"pong").unwrap();
        assert_eq!(ep.wait(&mut evs, Duration::from_secs(2)).unwrap(), 1);
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
        assert!(would_block(
            &read_stamped(fd.as_fd(), &mut buf).unwrap_err()
        ));
        drop(fd);
        // The peer sees the end of stream: dropping the OwnedFd closed the socket.
        peer.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        assert_eq!(peer.read(&mut buf).unwrap(), 0);
    }
}
