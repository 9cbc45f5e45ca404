//! The terminal progress: one live status line per phase on a terminal (a line a
//! second when stderr is not one), and notes that keep off that line.

use redpacket_formats::LoadgenLine;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

/// A live status line is on the terminal without its newline.
static LIVE_LINE: AtomicBool = AtomicBool::new(false);

/// Ends the live status line, if one shows, so that what follows gets a line of its own.
pub fn end_live_line() {
    if LIVE_LINE.swap(false, Relaxed) {
        eprintln!();
    }
}

/// Prints a message on stderr on a line of its own, even while a live status line shows.
pub fn note_line(msg: std::fmt::Arguments) {
    end_live_line();
    eprintln!("{msg}");
}

/// What the coordinator shows of each second.
pub(super) struct Progress {
    started: Instant,
    /// The phase of the live line on a terminal.
    printed_phase: Option<String>,
}

impl Progress {
    pub(super) fn new() -> Progress {
        Progress {
            started: Instant::now(),
            printed_phase: None,
        }
    }

    /// Shows one second's line: `connected` of `users` logged in during `phase`.
    pub(super) fn show(&mut self, phase: &str, line: &LoadgenLine, connected: u64, users: u32) {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let failed: u64 = line.conn_events.failed.values().sum();
        let ms = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        let text = format!(
            "[{:>5.0}s] {:<8} target {:>8.0}/s sent {:>7} answered {:>7} errors {:>5} timeouts {:>5} users {}/{} (+{} failed) p99 {} ms max {} ms",
            self.started.elapsed().as_secs_f64(),
            phase,
            line.target_qps,
            line.sent,
            line.answered,
            line.errors,
            line.timeouts,
            connected,
            users,
            failed,
            ms(line.latency_ms.p99),
            ms(line.latency_ms.max)
        );
        if tty {
            // One live line per phase on a terminal; a finished phase keeps its last.
            let same = self.printed_phase.as_deref() == Some(phase);
            let newline = if LIVE_LINE.load(Relaxed) && !same {
                "\n"
            } else {
                ""
            };
            eprint!("{newline}\r\x1b[K{text}");
            LIVE_LINE.store(true, Relaxed);
            self.printed_phase = Some(phase.to_string());
        } else {
            eprintln!("{text}");
        }
    }

    /// Ends the live line, if one shows: what follows starts a line of its own.
    pub(super) fn close(&mut self) {
        self.printed_phase = None;
        end_live_line();
    }
}
