//! A server's lives in its folder of a run: what a restart finds there and keeps.
//!
//! Under systemd (`Restart=on-failure`) a server killed mid-run comes back with the
//! same `--host-dir` and `--instance`, in the same folder. Its first life's per-second
//! lines must survive (the new life appends to `server.jsonl`), and its final account
//! must not pass for the whole instance's: a life killed before it wrote
//! `server-summary.json` took its ledger with it, so the new life's account says how
//! many lives were lost ([`LostLife`], in the server's summary), and the report
//! says that this instance's money cannot be reconciled.
//!
//! Each start appends a [`StartLine`] to `starts.jsonl` beside `server.jsonl`. At a
//! start, an earlier life is there when `starts.jsonl` or `server.jsonl` is: with its
//! `server-summary.json` it ended cleanly (that account is moved aside to
//! `server-summary.life-N.json`, N its life), without it the life was lost (or, with
//! no line since its recorded start, never served: a port taken, say).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub use redpacket_formats::lives::{
    kept_summary_name, lost_lives, parse_kept_summary_name, LostLife, Previous, StartLine,
    STARTS_FILE,
};

/// What a start found and recorded: this life's number and every lost life before it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Life {
    pub life: u32,
    pub previous: Previous,
    pub lost: Vec<LostLife>,
}

/// Records a start of the server whose files are `stats` (`server.jsonl`) and
/// `summary` (`server-summary.json`) in `dir`: finds an earlier life, keeps its
/// account aside if it has one, ends a cut last line of `server.jsonl` so the new
/// life's lines start on their own, and appends this start to `starts.jsonl`.
pub fn begin(dir: &Path, stats: &Path, summary: &Path, now: f64, pid: u32) -> io::Result<Life> {
    let starts_path = dir.join(STARTS_FILE);
    let mut starts: Vec<StartLine> = fs::read_to_string(&starts_path)
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default();
    let stats_len = fs::metadata(stats).map(|m| m.len()).unwrap_or(0);
    // Lives before this one: those recorded, or one unrecorded (a server older than
    // this file) when only its lines are there.
    let before = match starts.iter().map(|s| s.life).max() {
        Some(n) => n.max(starts.len() as u32),
        None if stats_len > 0 || summary.exists() => 1,
        None => 0,
    };
    let mut line = StartLine {
        t: now,
        pid,
        life: before + 1,
        ..Default::default()
    };
    if before > 0 {
        line.previous_last_t = last_line_t(stats)?;
        // Lines written since the last recorded start, if any was recorded.
        let served = match (starts.last(), line.previous_last_t) {
            (Some(prev), Some(last)) => last >= prev.t,
            (Some(_), None) => false,
            (None, _) => true,
        };
        line.previous = if summary.exists() {
            fs::rename(summary, dir.join(kept_summary_name(before)))?;
            Previous::Clean
        } else if served {
            Previous::Lost
        } else {
            Previous::NotStarted
        };
        end_cut_line(stats, stats_len)?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&starts_path)?;
    let text = serde_json::to_string(&line).map_err(io::Error::other)?;
    writeln!(f, "{text}")?;
    f.sync_all()?;
    starts.push(line.clone());
    Ok(Life {
        life: line.life,
        previous: line.previous,
        lost: lost_lives(&starts),
    })
}

/// The `t` of the last readable line of a JSON Lines file (read from its last 64 KiB).
fn last_line_t(path: &Path) -> io::Result<Option<f64>> {
    let Ok(mut f) = File::open(path) else {
        return Ok(None);
    };
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    let text = String::from_utf8_lossy(&tail);
    #[derive(serde::Deserialize)]
    struct T {
        t: f64,
    }
    Ok(text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<T>(l).ok())
        .map(|x| x.t))
}

/// Ends the file with a newline if a killed writer left its last line cut.
fn end_cut_line(path: &Path, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let mut f = OpenOptions::new().read(true).append(true).open(path)?;
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    if last[0] != b'\n' {
        f.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh folder (unit tests have no target temporary folder: the system's).
    fn tmp(name: &str) -> PathBuf {
        redpacket_testkit::scratch::fresh_in(&std::env::temp_dir(), "redpacket-lives", name)
    }

    #[test]
    fn first_lost_and_clean_lives_are_told_apart() {
        let d = tmp("three");
        let (stats, summary) = (d.join("server.jsonl"), d.join("server-summary.json"));
        let first = begin(&d, &stats, &summary, 100.0, 7).unwrap();
        assert_eq!((first.life, first.previous), (1, Previous::None));
        assert!(first.lost.is_empty());
        // The first life writes two lines, the second cut by a kill.
        fs::write(&stats, "{\"t\":101.0}\n{\"t\":102.0}\n{\"t\":10").unwrap();
        let second = begin(&d, &stats, &summary, 110.0, 8).unwrap();
        assert_eq!((second.life, second.previous), (2, Previous::Lost));
        let lost = LostLife {
            life: 1,
            last_seen: 102.0,
            restarted: 110.0,
        };
        assert_eq!(second.lost, vec![lost.clone()]);
        assert!(fs::read_to_string(&stats).unwrap().ends_with("{\"t\":10\n"));
        // The second life ends cleanly; the third keeps its account aside.
        fs::write(&summary, "{}").unwrap();
        let third = begin(&d, &stats, &summary, 120.0, 9).unwrap();
        assert_eq!((third.life, third.previous), (3, Previous::Clean));
        assert_eq!(third.lost, vec![lost]);
        assert!(!summary.exists());
        assert!(d.join(kept_summary_name(2)).exists());
        // The third life never gets to write a line (its port is taken, say).
        let fourth = begin(&d, &stats, &summary, 130.0, 10).unwrap();
        assert_eq!((fourth.life, fourth.previous), (4, Previous::NotStarted));
        assert_eq!(fourth.lost.len(), 1);
        let starts = fs::read_to_string(d.join(STARTS_FILE)).unwrap();
        assert_eq!(starts.lines().count(), 4);
        assert_eq!(
            parse_kept_summary_name("server-summary.life-2.json"),
            Some(2)
        );
        assert_eq!(parse_kept_summary_name("server-summary.json"), None);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn lines_without_starts_file_are_an_unrecorded_first_life() {
        let d = tmp("old");
        let (stats, summary) = (d.join("server.jsonl"), d.join("server-summary.json"));
        fs::write(&stats, "{\"t\":5.5}\n").unwrap();
        let life = begin(&d, &stats, &summary, 9.0, 1).unwrap();
        assert_eq!(life.life, 2);
        assert_eq!(life.lost[0].last_seen, 5.5);
        let _ = fs::remove_dir_all(&d);
    }
}
