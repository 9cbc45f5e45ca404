//! Following each host's per-second files as they grow: one `tail -F` per host, run
//! here for a local host and over SSH for a remote one, its lines sent to the view.
//!
//! `tail -F` is on every Linux host and follows a file that does not exist yet (the run
//! folder is made when the process starts) and one that is replaced. Its `==> FILE <==`
//! headers say which file the lines after them come from, so one process (and one SSH
//! session) serves every file of a host. Over SSH the remote `tail` is stopped when
//! this side goes: it is killed as soon as its standard input, held open by us, closes.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::time::{SystemTime, UNIX_EPOCH};

/// A host to follow: its name, its files, and how to reach it.
#[derive(Clone, Debug)]
pub struct Source {
    pub host: String,
    pub files: Vec<String>,
    /// The SSH command that reaches the host, up to and with the host (the remote
    /// command is added); empty for a file of this machine.
    pub ssh: Vec<String>,
    /// Read the files as root (`sudo -n`), for a folder the SSH user cannot read.
    pub sudo: bool,
}

/// What the followers tell the view.
#[derive(Debug)]
pub enum Event {
    /// One line of `file` of `host`, arrived at `at` (Unix seconds).
    Line {
        host: String,
        file: String,
        line: String,
        at: f64,
    },
    /// The host's follower ended (its connection closed); `why` is its last words.
    Ended { host: String, why: String },
}

/// A line longer than this is no record of ours: dropped, and the next one read.
const MAX_LINE: usize = 1 << 20;

/// The running followers; dropping them stops every one.
pub struct Followers {
    children: Vec<Child>,
}

impl Drop for Followers {
    fn drop(&mut self) {
        for c in &mut self.children {
            // Closing its stdin ends the remote tail; killing ends the local process.
            drop(c.stdin.take());
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts following every source, each in a thread of its own sending to `tx`.
pub fn start(sources: &[Source], tx: &Sender<Event>) -> std::io::Result<Followers> {
    let mut followers = Followers {
        children: Vec::new(),
    };
    for s in sources {
        let argv = argv(s);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", argv[0])))?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (tx, host, files) = (tx.clone(), s.host.clone(), s.files.clone());
        std::thread::Builder::new()
            .name(format!("follow {host}"))
            .spawn(move || {
                read_lines(stdout, &host, &files, &tx);
                let mut why = String::new();
                let _ = stderr.by_ref().take(4096).read_to_string(&mut why);
                let why = why.lines().last().unwrap_or("").trim().to_string();
                let _ = tx.send(Event::Ended { host, why });
            })?;
        followers.children.push(child);
    }
    Ok(followers)
}

/// The command that follows `s`'s files: `tail` here, or `tail` over SSH.
fn argv(s: &Source) -> Vec<String> {
    let mut tail = vec!["tail", "-v", "-n", "+1", "-F", "--"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    tail.extend(s.files.iter().cloned());
    if s.ssh.is_empty() {
        return tail;
    }
    // The remote tail lives as long as our end of the session: `cat` returns when the
    // session's input closes, and then the tail is killed.
    let quoted = tail.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    let script = format!("{quoted} 2>/dev/null & t=$!; cat >/dev/null; kill $t");
    let remote = if s.sudo {
        format!("sudo -n sh -c {}", quote(&script))
    } else {
        format!("sh -c {}", quote(&script))
    };
    let mut argv = s.ssh.clone();
    argv.push(remote);
    argv
}

/// `w` as one word for a POSIX shell.
fn quote(w: &str) -> String {
    if !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./+=:,@".contains(&b))
    {
        return w.to_string();
    }
    format!("'{}'", w.replace('\'', r"'\''"))
}

/// Reads `tail`'s output, sending each record line with the file its header named.
fn read_lines(out: impl Read, host: &str, files: &[String], tx: &Sender<Event>) {
    let mut r = BufReader::new(out);
    let mut buf = Vec::new();
    // With one file and no header yet, the lines are that file's.
    let mut file = files.first().cloned().unwrap_or_default();
    loop {
        buf.clear();
        match r
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
            // Skip the rest of an overlong line.
            let mut sink = Vec::new();
            if r.read_until(b'\n', &mut sink).unwrap_or(0) == 0 {
                return;
            }
            continue;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            continue;
        };
        let text = text.trim_end_matches(['\n', '\r']);
        if let Some(name) = text
            .strip_prefix("==> ")
            .and_then(|t| t.strip_suffix(" <=="))
        {
            file = name.to_string();
            continue;
        }
        if text.is_empty() {
            continue;
        }
        let event = Event::Line {
            host: host.to_string(),
            file: file.clone(),
            line: text.to_string(),
            at: unix_now(),
        };
        if tx.send(event).is_err() {
            return;
        }
    }
}

/// The wall clock, in Unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_follower_is_one_quoted_word_after_the_ssh_command() {
        let s = Source {
            host: "cli1".into(),
            files: vec!["/opt/run's/cli1/loadgen.jsonl".into()],
            ssh: vec!["ssh".into(), "cli1".into()],
            sudo: true,
        };
        let argv = argv(&s);
        assert_eq!(argv.len(), 3);
        assert_eq!(
            argv[2],
            r#"sudo -n sh -c 'tail -v -n +1 -F -- '\''/opt/run'\''\'\'''\''s/cli1/loadgen.jsonl'\'' 2>/dev/null & t=$!; cat >/dev/null; kill $t'"#
        );
    }

    #[test]
    fn headers_name_the_file_of_the_lines_after_them() {
        let out = "==> a <==\n{\"t\":1}\n\n==> b <==\n{\"t\":2}\n{\"t\":3}\n";
        let (tx, rx) = std::sync::mpsc::channel();
        read_lines(out.as_bytes(), "h", &["a".into(), "b".into()], &tx);
        drop(tx);
        let got: Vec<(String, String)> = rx
            .into_iter()
            .map(|e| match e {
                Event::Line { file, line, .. } => (file, line),
                Event::Ended { .. } => unreachable!(),
            })
            .collect();
        let want = [("a", "{\"t\":1}"), ("b", "{\"t\":2}"), ("b", "{\"t\":3}")];
        assert_eq!(got.len(), 3);
        for ((f, l), (wf, wl)) in got.iter().zip(want) {
            assert_eq!((f.as_str(), l.as_str()), (wf, wl));
        }
    }
}
