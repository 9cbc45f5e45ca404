//! The terminal view: the verdict, the run's lines, what is missing, the tables and the
//! footprint as plain text, and the side-by-side comparison of two runs.

use std::fmt::Write;

use super::analyze::{Analysis, HOST_NOTE};
use super::footprint;
use super::load::Run;
use super::table::{compare_table, host_tables, phase_table, to_text};
use super::verdict::{preamble, verdict};

/// What is missing or damaged, a line each (empty when nothing is).
pub fn problems_text(run: &Run) -> String {
    if run.problems.is_empty() {
        return String::new();
    }
    let mut s = String::from("MISSING OR DAMAGED:\n");
    for p in &run.problems {
        let _ = writeln!(s, "  - {p}");
    }
    s
}

/// The whole terminal report.
pub fn terminal(run: &Run, a: &Analysis) -> String {
    let mut s = verdict(run, a).join("\n");
    s.push_str("\n\n");
    s.push_str(&preamble(run).join("\n"));
    s.push('\n');
    s.push_str(&problems_text(run));
    s.push('\n');
    s.push_str(&to_text(&phase_table(a)));
    let hosts = host_tables(a);
    if !hosts.is_empty() {
        let _ = write!(s, "\n{HOST_NOTE}\n");
    }
    for (title, t) in hosts {
        let _ = write!(s, "\n{title}\n{}", to_text(&t));
    }
    s.push('\n');
    match &a.capacity {
        Some(c) => s.push_str(&c.sentence()),
        None => s.push_str("Capacity: no server-side shake rate in this run."),
    }
    s.push('\n');
    s
}

/// Each host's footprint as text: how the users got in, the memory and the CPU tables.
pub fn footprints_text(run: &Run) -> String {
    let mut text = String::new();
    for f in footprint::footprints(run) {
        text.push_str(&format!("\nFootprint on {}\n", f.host));
        if let Some(h) = &f.held {
            text.push_str(&h.sentence());
            text.push('\n');
        }
        text.push_str(&to_text(&footprint::memory_table(&f)));
        text.push('\n');
        text.push_str(&to_text(&footprint::cpu_table(&f)));
        text.push_str(footprint::note());
        text.push('\n');
    }
    text
}

/// Two runs' phase tables side by side, matched by phase name, with B - A, each run's
/// problems before and its capacity line after.
pub fn comparison(ra: &Run, aa: &Analysis, rb: &Run, ab: &Analysis) -> String {
    let mut s = format!(
        "Comparing A = {} with B = {} (difference is B - A)\n",
        ra.id, rb.id
    );
    for (which, r) in [("A", ra), ("B", rb)] {
        let p = problems_text(r);
        if !p.is_empty() {
            s.push_str(&format!("{which} ({}) {p}", r.id));
        }
    }
    let tables = compare_table(ra, aa, rb, ab);
    if tables.is_empty() {
        s.push_str("The runs have no phase to compare.\n");
    }
    for (name, t) in tables {
        s.push_str(&format!("\nPhase {name}\n"));
        s.push_str(&to_text(&t));
    }
    for (r, a) in [(ra, aa), (rb, ab)] {
        if let Some(c) = &a.capacity {
            s.push_str(&format!("\n{}: {}\n", r.id, c.sentence()));
        }
    }
    s
}
