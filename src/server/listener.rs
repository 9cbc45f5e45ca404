//! The listening sockets: one per worker, all on one address with SO_REUSEPORT.
//!
//! They are bound here, on the starting thread, before any worker runs: a taken port is
//! then one clear error at start, and port 0 resolves once (the first bind picks the
//! port, the rest join it).

use crate::config::Config;
use redpacket_sys::cores;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic value; the same on x86 and arm64).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Binds one listener per worker on `cfg.listen`; returns them in worker order, with the
/// address actually bound (the port filled in when 0 was asked for).
pub fn bind_group(cfg: &Config) -> io::Result<(Vec<TcpListener>, SocketAddr)> {
    let n = cfg.cores.len();
    // Listener i of the group must belong to the worker the kernel will steer to it.
    let order: Vec<usize> = if cfg.steer_incoming_cpu {
        cores::steering_order(&cfg.cores).map_err(io::Error::other)?
    } else {
        (0..n).collect()
    };
    let mut addr = cfg.listen;
    let mut by_worker: Vec<Option<TcpListener>> = (0..n).map(|_| None).collect();
    let mut first: Option<Socket> = None;
    for &worker in &order {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        if cfg.defer_accept > 0 {
            set_int(
                &s,
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                cfg.defer_accept as i32,
            )?;
        }
        s.bind(&addr.into())?;
        s.listen(cfg.backlog)?;
        if let Some(local) = s.local_addr()?.as_socket() {
            addr = local;
        }
        if first.is_none() {
            first = Some(s.try_clone()?);
        }
        by_worker[worker] = Some(s.into());
    }
    if cfg.steer_incoming_cpu {
        if let Some(s) = &first {
            attach_cpu_steering(s, n as u32)?;
        }
    }
    Ok((by_worker.into_iter().flatten().collect(), addr))
}

fn set_int(s: &Socket, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    setsockopt(s, level, name, &v)
}

/// `setsockopt(2)` with any option value the kernel copies during the call.
fn setsockopt<T>(s: &Socket, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: the kernel reads `size_of::<T>()` bytes from `v`, a live reference.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Attaches the classic BPF program `return cpu % n` to the reuseport group, so each
/// new connection goes to the listener of the worker on the CPU that received it.
fn attach_cpu_steering(s: &Socket, n: u32) -> io::Result<()> {
    let code = |c: u32| c as u16;
    let prog = [
        libc::sock_filter {
            code: code(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS),
            jt: 0,
            jf: 0,
            k: (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32,
        },
        libc::sock_filter {
            code: code(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K),
            jt: 0,
            jf: 0,
            k: n,
        },
        libc::sock_filter {
            code: code(libc::BPF_RET | libc::BPF_A),
            jt: 0,
            jf: 0,
            k: 0,
        },
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // The kernel copies the program during the call; `prog` outlives it.
    setsockopt(s, libc::SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog)
}

/// Options for each accepted client socket.
pub fn tune_client(s: &std::net::TcpStream, cfg: &Config) {
    let sock = socket2::SockRef::from(s);
    // Failures here cost only a little latency or memory; they never refuse a client.
    if cfg.nodelay {
        let _ = sock.set_tcp_nodelay(true);
    }
    if cfg.busy_poll > 0 {
        let _ = sock.set_busy_poll(cfg.busy_poll);
    }
    if cfg.sock_buf > 0 {
        let _ = sock.set_send_buffer_size(cfg.sock_buf);
        let _ = sock.set_recv_buffer_size(cfg.sock_buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_resolves_once_for_the_whole_group() {
        let mut cfg = Config::for_tests();
        cfg.cores = vec![0, 0, 0];
        let (ls, addr) = bind_group(&cfg).unwrap();
        assert_eq!(ls.len(), 3);
        assert_ne!(addr.port(), 0);
        for l in &ls {
            assert_eq!(l.local_addr().unwrap(), addr);
        }
    }

    #[test]
    fn cpu_steering_attaches() {
        let mut cfg = Config::for_tests();
        cfg.cores = vec![0, 1];
        cfg.steer_incoming_cpu = true;
        let (ls, _) = bind_group(&cfg).unwrap();
        assert_eq!(ls.len(), 2);
    }

    #[test]
    fn a_taken_port_is_an_error() {
        let cfg = Config::for_tests();
        let _held = bind_group(&cfg).unwrap();
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut cfg2 = Config::for_tests();
        cfg2.listen = plain.local_addr().unwrap();
        assert!(bind_group(&cfg2).is_err());
    }
}
