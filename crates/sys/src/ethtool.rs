//! A NIC driver's own counters, the ones `ethtool -S` prints, read with the kernel's
//! ethtool ioctl (SIOCETHTOOL) on a socket: no child process.
//!
//! The host sampler reads them once a second inside a load generator that holds tens of
//! thousands of sockets; running `ethtool` there forked that process (copying its page
//! tables) and closed every descriptor in the child, about 40 ms of CPU in one burst
//! each second. Here a reading is one ioctl.
//!
//! Three commands: ETHTOOL_GDRVINFO gives the number of counters, ETHTOOL_GSTRINGS their
//! names (read once, and again when the number changes), ETHTOOL_GSTATS their values.
//! The number can change between two calls (the channels changed with `ethtool -L`):
//! recent kernels then return no data, older ones write as many entries as the driver
//! has now, past a buffer sized for the old number. So every buffer the kernel fills
//! here ends against a page we cannot write: an overrun is EFAULT, not corrupted memory.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

// Commands and the string set, from `linux/ethtool.h`.
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETH_SS_STATS: u32 = 1;
/// Each name is this many bytes, NUL-padded (not terminated when it fills them).
const ETH_GSTRING_LEN: usize = 32;

/// The most counters taken from a driver (real NICs have tens to a few thousand): a
/// larger count is an error, so a bad driver cannot make us allocate without bound.
pub const MAX_STATS: usize = 65_536;

/// `struct ethtool_drvinfo`.
#[allow(dead_code, reason = "the kernel reads and writes it")]
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// `struct ethtool_gstrings` without its `u8 data[len * 32]`, which follows it.
#[allow(dead_code, reason = "the kernel reads and writes it")]
#[repr(C)]
struct StringsHeader {
    cmd: u32,
    string_set: u32,
    len: u32,
}

/// `struct ethtool_stats` without its `u64 data[n_stats]`, which follows it.
#[allow(dead_code, reason = "the kernel reads and writes it")]
#[repr(C)]
struct StatsHeader {
    cmd: u32,
    n_stats: u32,
}

const _: () = assert!(std::mem::size_of::<DrvInfo>() == 196);
const _: () = assert!(std::mem::size_of::<StringsHeader>() == 12);
const _: () = assert!(std::mem::size_of::<StatsHeader>() == 8);

/// One interface's driver counters: a socket for the ioctl, and the counters' names,
/// kept between readings.
pub struct NicStats {
    sock: OwnedFd,
    ifname: [libc::c_char; libc::IFNAMSIZ],
    names: Vec<String>,
    /// Where GSTATS writes, sized for `names`; made at the first reading after they change.
    values: Option<Guarded>,
}

impl NicStats {
    /// Checks the name, opens the socket and reads the counters' names. An interface
    /// without driver counters (loopback, most virtual devices) is an error, or has no
    /// names.
    pub fn open(iface: &str) -> io::Result<NicStats> {
        let ifname = if_name(iface)?;
        // SAFETY: socket() takes no pointers; the descriptor it returns is ours alone.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a descriptor just opened and owned by nothing else.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut s = NicStats {
            sock,
            ifname,
            names: Vec::new(),
            values: None,
        };
        s.reload_names()?;
        Ok(s)
    }

    /// The counters' names, in the driver's order (the order of [`NicStats::read`]).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Every counter now, as (name, value) in the driver's order: one ioctl while the
    /// number of counters stays the same; the names are read again when it changed. An
    /// interface whose driver has no counters reads none.
    pub fn read(&mut self) -> io::Result<impl Iterator<Item = (&str, u64)> + '_> {
        let mut done = false;
        for _ in 0..3 {
            if self.names.is_empty() || self.read_values()? {
                done = true;
                break;
            }
            self.reload_names()?;
        }
        if !done {
            return Err(io::Error::other(
                "the driver's number of counters kept changing",
            ));
        }
        let values = match &self.values {
            Some(v) if !self.names.is_empty() => v.stats(),
            _ => &[],
        };
        Ok(self
            .names
            .iter()
            .map(String::as_str)
            .zip(values.iter().copied()))
    }

    /// GDRVINFO: how many counters the driver has now.
    fn count(&self) -> io::Result<usize> {
        // SAFETY: DrvInfo is plain integers and byte arrays; all zeros is a valid value.
        let mut info: DrvInfo = unsafe { std::mem::zeroed() };
        info.cmd = ETHTOOL_GDRVINFO;
        // SAFETY: GDRVINFO reads and writes one `struct ethtool_drvinfo`, which `info`
        // is (same layout, checked size), alive for the call.
        unsafe { ethtool_ioctl(&self.sock, &self.ifname, (&raw mut info).cast()) }?;
        capped(info.n_stats)
    }

    /// GDRVINFO then GSTRINGS; again when the number changed between the two.
    fn reload_names(&mut self) -> io::Result<()> {
        self.values = None;
        for _ in 0..3 {
            let n = self.count()?;
            if n == 0 {
                self.names.clear();
                return Ok(());
            }
            let len = std::mem::size_of::<StringsHeader>() + n * ETH_GSTRING_LEN;
            let buf = Guarded::new(len)?;
            let head = buf.tail().cast::<StringsHeader>();
            // SAFETY: `head` starts `len` writable bytes (4-aligned: the mapping's end is
            // page-aligned and `len` a multiple of 4), room for the header.
            unsafe {
                head.write(StringsHeader {
                    cmd: ETHTOOL_GSTRINGS,
                    string_set: ETH_SS_STATS,
                    len: n as u32,
                })
            };
            // SAFETY: GSTRINGS reads the header, writes it back and then as many 32-byte
            // names after it as the driver has: exactly the `len` bytes before the guard
            // page while that is still `n`; more stops at the guard with EFAULT.
            match unsafe { ethtool_ioctl(&self.sock, &self.ifname, head.cast()) } {
                Err(e) if e.raw_os_error() == Some(libc::EFAULT) => continue,
                r => r?,
            }
            // SAFETY: the header was written above and is initialised memory.
            if unsafe { head.read() }.len as usize != n {
                continue; // the count changed between GDRVINFO and GSTRINGS
            }
            // SAFETY: the `n * 32` bytes after the header are mapped, initialised (zeroed
            // by mmap, then written by the kernel) and not written while this lives.
            let data = unsafe {
                std::slice::from_raw_parts(
                    buf.tail().add(std::mem::size_of::<StringsHeader>()),
                    n * ETH_GSTRING_LEN,
                )
            };
            self.names = parse_names(data);
            return Ok(());
        }
        Err(io::Error::other(
            "the driver's number of counters kept changing",
        ))
    }

    /// GSTATS into the buffer sized for `names`: false when the driver's number of
    /// counters is no longer theirs.
    fn read_values(&mut self) -> io::Result<bool> {
        let n = self.names.len();
        let len = std::mem::size_of::<StatsHeader>() + n * 8;
        let buf = match self.values.take() {
            Some(b) if b.len == len => b,
            _ => Guarded::new(len)?,
        };
        let head = buf.tail().cast::<StatsHeader>();
        // SAFETY: `head` starts `len` writable bytes, 8-aligned (page-aligned end, `len`
        // a multiple of 8), room for the header.
        unsafe {
            head.write(StatsHeader {
                cmd: ETHTOOL_GSTATS,
                n_stats: n as u32,
            })
        };
        // SAFETY: GSTATS reads the header, writes it back and then as many u64s after it
        // as the driver has: exactly the `len` bytes before the guard page while that is
        // still `n`; more stops at the guard with EFAULT.
        let r = unsafe { ethtool_ioctl(&self.sock, &self.ifname, head.cast()) };
        // SAFETY: the header was written above and is initialised memory.
        let got = unsafe { head.read() }.n_stats as usize;
        self.values = Some(buf);
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => Ok(false),
            Err(e) => Err(e),
            Ok(()) => Ok(got == n),
        }
    }
}

/// The interface name as `ifr_name` holds it; too long or holding a NUL is an error.
fn if_name(iface: &str) -> io::Result<[libc::c_char; libc::IFNAMSIZ]> {
    let b = iface.as_bytes();
    if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "not an interface name (1 to {} bytes, no NUL): {iface:?}",
                libc::IFNAMSIZ - 1
            ),
        ));
    }
    let mut name = [0 as libc::c_char; libc::IFNAMSIZ];
    for (d, s) in name.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(name)
}

/// A count from the kernel, refused above [`MAX_STATS`].
fn capped(n: u32) -> io::Result<usize> {
    let n = n as usize;
    if n > MAX_STATS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the driver reports {n} counters, more than {MAX_STATS}"),
        ));
    }
    Ok(n)
}

/// Names of 32 bytes each, each ending at its first NUL (or filling all 32).
fn parse_names(data: &[u8]) -> Vec<String> {
    data.chunks_exact(ETH_GSTRING_LEN)
        .map(|s| {
            let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
            String::from_utf8_lossy(&s[..end]).into_owned()
        })
        .collect()
}

/// SIOCETHTOOL on `ifname` with the command buffer at `cmd`.
///
/// # Safety
///
/// `cmd` must point at a command buffer laid out as the kernel expects for the command
/// in its first four bytes, with room for everything that command writes back (or end
/// against memory that faults), and nothing else may use that memory during the call.
unsafe fn ethtool_ioctl(
    sock: &OwnedFd,
    ifname: &[libc::c_char; libc::IFNAMSIZ],
    cmd: *mut u8,
) -> io::Result<()> {
    // SAFETY: ifreq is a name array and a union of integers, arrays and a pointer; all
    // zeros is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_name = *ifname;
    ifr.ifr_ifru.ifru_data = cmd.cast();
    // SAFETY: SIOCETHTOOL reads `ifr` (alive for the call, NUL-terminated name) and the
    // command buffer it points at, which the caller vouches for.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL as _, &mut ifr) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `len` bytes the kernel fills, followed by a page no one can write: a command that
/// writes more than asked for (the driver's count grew) stops there with EFAULT.
struct Guarded {
    map: NonNull<libc::c_void>,
    map_len: usize,
    /// Where the guard page starts, from `map`.
    data_end: usize,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone and holds only plain bytes.
unsafe impl Send for Guarded {}

impl Guarded {
    fn new(len: usize) -> io::Result<Guarded> {
        let page = crate::procfs::page_and_tick().0 as usize;
        let data_end = len.div_ceil(page).max(1) * page;
        let map_len = data_end + page;
        // SAFETY: a new anonymous private mapping at an address the kernel picks: it
        // touches no memory we already have.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(p).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let g = Guarded {
            map,
            map_len,
            data_end,
            len,
        };
        // SAFETY: the last page of the mapping made above (page-aligned, ours alone).
        let rc =
            unsafe { libc::mprotect(p.cast::<u8>().add(data_end).cast(), page, libc::PROT_NONE) };
        if rc != 0 {
            return Err(io::Error::last_os_error()); // `g` unmaps on drop
        }
        Ok(g)
    }

    /// The start of the last `len` bytes before the guard page.
    fn tail(&self) -> *mut u8 {
        // SAFETY: `data_end - len` is within the mapping (len <= data_end).
        unsafe { self.map.as_ptr().cast::<u8>().add(self.data_end - self.len) }
    }

    /// The u64s after a GSTATS header (8-aligned: see `read_values`).
    fn stats(&self) -> &[u64] {
        let n = (self.len - std::mem::size_of::<StatsHeader>()) / 8;
        // SAFETY: `n` u64s fit in the `len` mapped bytes after the 8-byte header, 8-aligned
        // when `len` is a multiple of 8 (GSTATS buffers are), initialised (zeroed by mmap,
        // then written by the kernel), and not written while the borrow of `self` lives.
        unsafe {
            std::slice::from_raw_parts(
                self.tail()
                    .add(std::mem::size_of::<StatsHeader>())
                    .cast::<u64>(),
                n,
            )
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: the whole mapping made in `new`, unmapped once; nothing borrows it now.
        unsafe { libc::munmap(self.map.as_ptr(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Instant;

    #[test]
    fn names_end_at_their_first_nul_or_fill_32_bytes() {
        let mut data = vec![0u8; 3 * ETH_GSTRING_LEN];
        data[..8].copy_from_slice(b"rx_drops");
        data[32..64].copy_from_slice(b"a_name_of_exactly_thirty_two_b_x");
        data[64..67].copy_from_slice(b"tx\0");
        data[67..70].copy_from_slice(b"bad"); // after the NUL: not part of the name
        assert_eq!(
            parse_names(&data),
            ["rx_drops", "a_name_of_exactly_thirty_two_b_x", "tx"]
        );
        // A trailing partial name is ignored, invalid UTF-8 is replaced, not a panic.
        let mut odd = vec![0xffu8; ETH_GSTRING_LEN + 5];
        odd[1] = 0;
        assert_eq!(parse_names(&odd), ["\u{fffd}"]);
    }

    #[test]
    fn bad_interface_names_are_errors() {
        for name in [
            "",
            "sixteen_bytes_xx",
            "a_much_longer_interface_name",
            "et\0h0",
        ] {
            let e = NicStats::open(name).err().expect(name);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}: {e}");
        }
        // Fifteen bytes is the longest a name can be: accepted, then not found.
        let e = NicStats::open("fifteen_bytes_x").err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
    }

    #[test]
    fn counts_above_the_cap_are_errors() {
        assert_eq!(capped(0).unwrap(), 0);
        assert_eq!(capped(MAX_STATS as u32).unwrap(), MAX_STATS);
        assert!(capped(MAX_STATS as u32 + 1).is_err());
        assert!(capped(u32::MAX).is_err());
    }

    #[test]
    fn loopback_has_no_counters_and_does_not_panic() {
        match NicStats::open("lo") {
            Err(e) => assert_ne!(e.kind(), io::ErrorKind::InvalidInput, "{e}"),
            Ok(mut s) => {
                assert!(s.names().is_empty(), "{:?}", s.names());
                assert_eq!(s.read().unwrap().count(), 0);
            }
        }
    }

    #[test]
    fn a_write_past_the_buffer_stops_at_the_guard() {
        let g = Guarded::new(8 + 3 * 8).unwrap();
        assert_eq!(g.stats(), [0, 0, 0]);
        // read(2) into the last 8 bytes and 8 past them: the kernel's copy faults.
        let f = std::fs::File::open("/dev/zero").unwrap();
        // SAFETY: the 16 bytes from `end - 8` are 8 of ours and 8 of the guard page,
        // which the kernel may not write: that is what is tested.
        let n = unsafe { libc::read(f.as_raw_fd(), g.tail().add(g.len - 8).cast(), 16) };
        // Either a short read up to the guard, or EFAULT: never a write past it.
        if n < 0 {
            assert_eq!(
                io::Error::last_os_error().raw_os_error(),
                Some(libc::EFAULT)
            );
        } else {
            assert!(n <= 8, "{n}");
        }
    }

    /// `ethtool -S IFACE`: the names and values under `NIC statistics:`, in order.
    fn ethtool_s(iface: &str) -> Option<Vec<(String, u64)>> {
        let out = Command::new("ethtool").arg("-S").arg(iface).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Some(
            text.lines()
                .filter_map(|l| {
                    let (k, v) = l.strip_prefix("     ")?.rsplit_once(": ")?;
                    Some((k.to_string(), v.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    /// Every interface but loopback, and those of them with driver counters.
    fn nics_with_counters() -> (Vec<String>, Vec<(String, NicStats)>) {
        let mut ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n != "lo")
                    .collect()
            })
            .unwrap_or_default();
        ifaces.sort();
        let nics = ifaces
            .iter()
            .filter_map(|i| Some((i.clone(), NicStats::open(i).ok()?)))
            .filter(|(_, s)| !s.names().is_empty())
            .collect();
        (ifaces, nics)
    }

    /// A name list of the wrong length (as after the driver's count changed) is read
    /// again, whether the kernel writes fewer values than asked, none, or more (which
    /// stop at the guard page).
    #[test]
    fn a_stale_name_list_is_read_again() {
        let (ifaces, mut nics) = nics_with_counters();
        let Some((iface, nic)) = nics.first_mut() else {
            println!("skipped: no interface but lo with driver counters among {ifaces:?}");
            return;
        };
        let names = nic.names().to_vec();
        let mut longer = names.clone();
        longer.push("gone".into());
        let shorter = names[..names.len() - 1].to_vec();
        for stale in [longer, shorter, vec!["x".into(); 2]] {
            if stale.is_empty() || stale.len() == names.len() {
                continue;
            }
            nic.names = stale;
            let read: Vec<&str> = nic.read().unwrap().map(|(k, _)| k).collect();
            assert_eq!(read, names, "{iface}");
        }
    }

    /// Every non-loopback interface with driver counters reads the names `ethtool -S`
    /// prints, in its order, and values between two of our readings around it.
    #[test]
    fn counters_match_ethtool_s_on_every_nic_that_has_them() {
        let (ifaces, mut nics) = nics_with_counters();
        if nics.is_empty() {
            println!("skipped: no interface but lo with driver counters among {ifaces:?}");
            return;
        }
        let have_ethtool = Command::new("ethtool").arg("--version").output().is_ok();
        if !have_ethtool {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the ethtool binary is missing (CI installs it)"
            );
            println!("comparison skipped: no ethtool binary to compare with");
        }
        for (iface, nic) in &mut nics {
            let read = |nic: &mut NicStats| -> Vec<(String, u64)> {
                nic.read()
                    .unwrap()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
            };
            let before = read(nic);
            assert_eq!(before.len(), nic.names().len(), "{iface}");
            if !have_ethtool {
                continue;
            }
            let theirs = ethtool_s(iface).expect("ethtool -S failed where the ioctl works");
            let after = read(nic);
            let names = |v: &[(String, u64)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
            assert_eq!(names(&before), names(&theirs), "{iface}");
            assert_eq!(names(&after), names(&theirs), "{iface}");
            for (((k, v), (_, a)), (_, b)) in theirs.iter().zip(&before).zip(&after) {
                assert!(
                    a.min(b) <= v && v <= a.max(b),
                    "{iface} {k}: ethtool {v}, ours {a} then {b}"
                );
            }
            println!(
                "{iface}: {} counters, as ethtool -S prints them",
                theirs.len()
            );
        }
        // One reading with the names kept, what the sampler pays each second.
        let (iface, nic) = &mut nics[0];
        let rounds = 1000;
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(nic.read().unwrap().count());
        }
        println!(
            "{iface}: one reading of {} counters in {:.1} us",
            nic.names().len(),
            t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
        );
    }
}
