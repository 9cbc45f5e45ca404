//! The one way the report touches a run folder's files: hosts are not trusted.
//!
//! The controller gathers every fleet host's folder into the run folder, so each file
//! there was written by a machine the report must not trust. A file may be a symbolic
//! link to anything on the controller, a FIFO that never ends, a device, or far larger
//! than any run writes; a host folder may be a link elsewhere. Here a run-folder file is
//! read only when it is a regular file reached without following a link in its last
//! component (`O_NOFOLLOW`), opened without blocking (`O_NONBLOCK`, then `fstat` must say
//! "regular file"), no larger than the cap of its kind, and within the run's
//! [`Budget`]. Folders are entered only when [`real_dir`] says they are folders, not
//! links: the report runs after collection, when nothing changes the folder under it.
//!
//! Writing goes the other way round: the report's own files are written to a fresh name
//! in the run folder and renamed into place ([`write_file`], [`replace_dir`]), so a
//! planted link is replaced, never written through.
//!
//! Every refusal is a [`Refused`] whose text goes into the report's list of problems.

use std::cell::Cell;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Take, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;

/// A per-second JSONL file (`server.jsonl`, `loadgen.jsonl`, `net.jsonl`,
/// `footprint.jsonl`). The largest lines are `net.jsonl`'s, about 2.4 KB (more with
/// ethtool counters): a whole day at 3 KB a line is 260 MB, under this cap.
pub const PER_SECOND_CAP: u64 = 256 * MIB;
/// One line of a JSONL file. The longest any writer makes is a `net.jsonl` line with
/// a NIC's ethtool counters, tens of KB; a longer line is skipped (and counted as
/// unreadable) without being held.
pub const LINE_CAP: usize = MIB as usize;
/// A whole-run account (`summary.json`, `server-summary.json` and its kept lives,
/// `starts.jsonl`): a few KB, one entry per phase or start; 8 MiB leaves room for
/// thousands of phases.
pub const SUMMARY_CAP: u64 = 8 * MIB;
/// `histograms.json`: a phase's histogram is a few KB of base64 (3 significant
/// figures, 1 us to 10 minutes); 16 MiB holds thousands of phases.
pub const HISTOGRAMS_CAP: u64 = 16 * MIB;
/// `run.json`: phases, hosts and command lines; a fleet of 100 000 hosts with their
/// roles and addresses is under 10 MB.
pub const RUN_JSON_CAP: u64 = 16 * MIB;
/// `tuning.txt`: about forty `key = value` lines, 2 KB.
pub const TUNING_CAP: u64 = MIB;
/// Everything the report keeps from one run folder, all files together: bytes read plus,
/// for each per-second line kept, the size of its record (so a file of tiny lines costs
/// what its records cost, not its bytes). Forty hosts with a day of every per-second
/// file fit; what is past it is left out and named. This, not the number of hosts or
/// files, bounds the report's memory (`results/README.md`, *Untrusted input*).
pub const RUN_READ_CAP: u64 = 1024 * MIB;
/// The heap the report may hold while it reads a run folder (counted by
/// [`super::heap`]): past it, no further line or file is kept, and that is named. Files
/// cost more once parsed than on disk (a short line is a whole record, a map entry a
/// B-tree slot and an allocation: twelve times its bytes), so this, with
/// [`RUN_READ_CAP`], is the bound on memory (peak RSS about 1.1 GB at worst); a real
/// run keeps about twice its files' size (the 32 MB million-user demo: 92 MB peak).
pub const RUN_HEAP_CAP: u64 = 1024 * MIB;
/// A host name (a folder of the run): the longest DNS name.
pub const NAME_CAP: usize = 253;

/// What the report may still read from one run folder (see [`RUN_READ_CAP`]), and how
/// many of its files and names were refused as unsafe (any fails the verdict).
#[derive(Debug)]
pub struct Budget {
    left: Cell<u64>,
    refused: Cell<usize>,
}

impl Budget {
    pub fn new(bytes: u64) -> Budget {
        Budget {
            left: Cell::new(bytes),
            refused: Cell::new(0),
        }
    }

    /// Counts one file or name refused as unsafe.
    pub fn refuse(&self) {
        self.refused.set(self.refused.get() + 1);
    }

    /// Files and names refused so far ([`open`] counts its own refusals).
    pub fn refused(&self) -> usize {
        self.refused.get()
    }

    /// Takes `n` bytes from the budget; `false` (and nothing taken) when it cannot, or
    /// when the process already holds [`RUN_HEAP_CAP`] of heap.
    pub fn take(&self, n: u64) -> bool {
        if super::heap::in_use().is_some_and(|h| h > RUN_HEAP_CAP) {
            return false;
        }
        match self.left.get().checked_sub(n) {
            Some(rest) => {
                self.left.set(rest);
                true
            }
            None => false,
        }
    }
}

impl Default for Budget {
    fn default() -> Budget {
        Budget::new(RUN_READ_CAP)
    }
}

/// Why a run-folder file was not read.
#[derive(Debug)]
pub enum Refused {
    /// No such file: not a problem by itself (the caller says whether it was expected).
    Absent,
    Symlink,
    /// A FIFO, a device, a socket or a folder: never read.
    NotRegular(&'static str),
    TooBig {
        size: u64,
        cap: u64,
    },
    /// The run's [`Budget`] is spent.
    Budget,
    Io(io::Error),
}

impl Refused {
    pub fn is_absent(&self) -> bool {
        matches!(self, Refused::Absent)
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Absent => f.write_str("is missing"),
            Refused::Symlink => {
                f.write_str("is a symbolic link: not followed (only regular files are read)")
            }
            Refused::NotRegular(what) => {
                write!(f, "is {what}, not a regular file: not read")
            }
            Refused::TooBig { size, cap } => write!(
                f,
                "is {size} bytes, above the cap of {cap} bytes for this kind of file: not read"
            ),
            Refused::Budget => write!(
                f,
                "is past what the report reads from one run ({RUN_READ_CAP} bytes of files, \
                 {RUN_HEAP_CAP} bytes of memory): not read"
            ),
            Refused::Io(e) => write!(f, "cannot be read ({e})"),
        }
    }
}

/// What a file that is not regular is, in words.
fn kind(t: &fs::FileType) -> &'static str {
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

/// Opens a run-folder file for reading: a regular file, not through a link, at most
/// `cap` bytes, its size taken from `budget`. The reader stops at `cap` even if the
/// file grows.
pub fn open(path: &Path, cap: u64, budget: &Budget) -> Result<Take<File>, Refused> {
    let opened = open_uncounted(path, cap, budget);
    if matches!(&opened, Err(r) if !r.is_absent()) {
        budget.refuse();
    }
    opened
}

fn open_uncounted(path: &Path, cap: u64, budget: &Budget) -> Result<Take<File>, Refused> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Refused::Absent,
            Some(libc::ELOOP) => Refused::Symlink,
            _ => Refused::Io(e),
        })?;
    let meta = file.metadata().map_err(Refused::Io)?;
    if !meta.file_type().is_file() {
        return Err(Refused::NotRegular(kind(&meta.file_type())));
    }
    if meta.len() > cap {
        return Err(Refused::TooBig {
            size: meta.len(),
            cap,
        });
    }
    if !budget.take(meta.len()) {
        return Err(Refused::Budget);
    }
    Ok(file.take(cap))
}

/// A whole run-folder file, as [`open`] allows.
pub fn read(path: &Path, cap: u64, budget: &Budget) -> Result<Vec<u8>, Refused> {
    let mut r = open(path, cap, budget)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(Refused::Io)?;
    Ok(out)
}

/// Whether `path` is a folder itself, not a link to one (links are never entered).
pub fn real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
}

/// A host name usable as a folder of the run: one plain path component. `Err` says why
/// not (the name is then reported and skipped, never joined to a path).
pub fn plain_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("is empty")
    } else if name == "." || name == ".." {
        Err("is a reference to a folder, not a name")
    } else if name.contains('/') {
        Err("holds a '/' (a path, not a name)")
    } else if name.contains('\0') {
        Err("holds a NUL")
    } else if name.chars().any(char::is_control) {
        Err("holds a control character")
    } else if name.len() > NAME_CAP {
        Err("is longer than any host name")
    } else {
        Ok(())
    }
}

/// A fresh name in `dir` for this process's own temporary copy of `name`.
fn temp_name(dir: &Path, name: &str, what: &str) -> PathBuf {
    dir.join(format!(".{name}.{what}-{}", std::process::id()))
}

/// Writes `name` in `dir`: into a fresh temporary file, then renamed over `name`.
/// Whatever `name` was (a link to anywhere, an older report), it is replaced, never
/// written through.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let tmp = temp_name(dir, name, "new");
    // A leftover of a killed report: remove the entry itself (a link is not followed).
    let _ = fs::remove_file(&tmp);
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| fs::rename(&tmp, dir.join(name)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| dir.join(name))
}

/// Replaces the folder `name` in `dir` by a fresh one that `fill` writes into.
///
/// `fill` gets an empty folder of this process's own making, so nothing in it can be a
/// planted link. Then whatever `name` was is replaced: a link (to a folder or anything
/// else) or a file is removed, the link itself and never its target; a real folder is
/// moved aside and removed whole, with any file an older report left in it. Then the new
/// folder is renamed to `name`.
pub fn replace_dir<T>(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> io::Result<T>,
) -> io::Result<T> {
    let tmp = temp_name(dir, name, "new");
    // `remove_dir_all` removes a link itself, never what it points to.
    if fs::symlink_metadata(&tmp).is_ok() {
        fs::remove_dir_all(&tmp).or_else(|_| fs::remove_file(&tmp))?;
    }
    fs::create_dir(&tmp)?;
    let filled = match fill(&tmp) {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let target = dir.join(name);
    let mut old = None;
    match fs::symlink_metadata(&target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
        Ok(m) if m.file_type().is_dir() => {
            let aside = temp_name(dir, name, "old");
            if fs::symlink_metadata(&aside).is_ok() {
                fs::remove_dir_all(&aside)?;
            }
            fs::rename(&target, &aside)?;
            old = Some(aside);
        }
        Ok(_) => fs::remove_file(&target)?,
    }
    fs::rename(&tmp, &target)?;
    if let Some(aside) = old {
        fs::remove_dir_all(aside)?;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        redpacket_testkit::scratch::fresh_in(&std::env::temp_dir(), "redpacket-safe-fs", tag)
    }

    #[test]
    fn only_regular_files_under_the_cap_and_the_budget() {
        let d = temp("open");
        fs::write(d.join("a"), "hello").unwrap();
        std::os::unix::fs::symlink(d.join("a"), d.join("link")).unwrap();
        let b = Budget::new(8);
        assert_eq!(read(&d.join("a"), 5, &b).unwrap(), b"hello");
        assert!(matches!(
            read(&d.join("a"), 4, &b),
            Err(Refused::TooBig { size: 5, cap: 4 })
        ));
        assert!(matches!(read(&d.join("a"), 5, &b), Err(Refused::Budget)));
        assert!(matches!(
            read(&d.join("link"), 5, &b),
            Err(Refused::Symlink)
        ));
        assert!(read(&d.join("none"), 5, &b).unwrap_err().is_absent());
        assert!(matches!(
            read(&d, 5, &b),
            Err(Refused::NotRegular("a folder"))
        ));
        assert!(matches!(
            read(Path::new("/dev/zero"), 5, &b),
            Err(Refused::NotRegular("a device"))
        ));
        assert!(real_dir(&d) && !real_dir(&d.join("a")));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn names_are_one_plain_component() {
        for ok in ["server1", "198.18.0.7", "host-a_b"] {
            assert!(plain_name(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(NAME_CAP + 1);
        for bad in [
            "",
            ".",
            "..",
            "../outside",
            "/etc",
            "a/b",
            "a\0b",
            "a\nb",
            &long,
        ] {
            assert!(plain_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn writes_replace_links_never_follow_them() {
        let d = temp("write");
        let outside = temp("write-outside");
        fs::write(outside.join("victim"), "keep").unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), d.join("report.html")).unwrap();
        std::os::unix::fs::symlink(&outside, d.join("charts")).unwrap();
        write_file(&d, "report.html", b"new").unwrap();
        replace_dir(&d, "charts", |c| fs::write(c.join("qps.svg"), "svg")).unwrap();
        assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "keep");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
        assert_eq!(fs::read_to_string(d.join("report.html")).unwrap(), "new");
        assert!(real_dir(&d.join("charts")));
        // A real folder is replaced whole.
        fs::write(d.join("charts/stale.png"), "old").unwrap();
        replace_dir(&d, "charts", |c| fs::write(c.join("qps.svg"), "svg2")).unwrap();
        assert!(!d.join("charts/stale.png").exists());
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            2,
            "no temporary left behind"
        );
        fs::remove_dir_all(&d).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }
}
