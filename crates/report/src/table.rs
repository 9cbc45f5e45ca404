//! Tables of text cells: the analysis's phase table, its per-host tables and the
//! side-by-side comparison of two runs, and their plain-text layout.
//!
//! The phase table has a row per figure and a column per phase, so the eye runs along
//! a row to see one figure change as the load rises, as in the old article's tables.
//! Every view (the terminal, report.md, report.html) lays out these same tables, so
//! they never disagree; only the layout differs.

use std::fmt::Write;

use super::analyze::{Analysis, Cell, PhaseStats, HOST_COLUMNS};
use super::load::Run;
use super::numbers::fmt_num;

/// A rectangular table: `header` then rows; a row with one cell is a section title.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Rows shown once when every phase shows the same text in both: (kept, left out).
/// Served answers are answered less shed ones, so the two agree whenever nothing was
/// shed; packets won is shake won by definition.
const SHOWN_ONCE: [(&str, &str); 3] = [
    ("client answered QPS (mean)", "client served QPS (mean)"),
    ("server shake QPS (mean)", "server served QPS (mean)"),
    ("shake won", "packets won"),
];

/// Rows that matter only when they are not zero: folded away when every phase shows 0
/// (or nothing).
const ONLY_WHEN_NOT_ZERO: [&str; 7] = [
    "errors",
    "timeouts",
    "shake overloaded",
    "TCP retransmits",
    "listen drops+overflows",
    "interface drops",
    "TCP resets sent",
];

/// The phase table: figures down, phases across. A row equal to another in every
/// phase ([`SHOWN_ONCE`]) is shown once and one zero in every phase
/// ([`ONLY_WHEN_NOT_ZERO`]) is left out; a last line names both.
pub fn phase_table(a: &Analysis) -> Table {
    let mut header = vec!["figure".to_string()];
    header.extend(a.phases.iter().map(|p| p.name.clone()));
    let mut rows = Vec::new();
    let mut equal: Vec<String> = Vec::new();
    let mut zero: Vec<&str> = Vec::new();
    if let Some(first) = a.phases.first() {
        let cells = |i: usize| -> Vec<String> {
            a.phases
                .iter()
                .map(|p| p.rows.get(i).map_or("-".into(), |(_, c)| c.text.clone()))
                .collect()
        };
        let index = |label: &str| first.rows.iter().position(|(l, _)| l == label);
        for (i, (label, _)) in first.rows.iter().enumerate() {
            if let Some(title) = label.strip_prefix("## ") {
                rows.push(vec![title.to_string()]);
                continue;
            }
            let these = cells(i);
            if ONLY_WHEN_NOT_ZERO.contains(&label.as_str())
                && these.iter().all(|c| c == "0" || c == "-")
            {
                if !zero.contains(&label.as_str()) {
                    zero.push(label);
                }
                continue;
            }
            let same_as = SHOWN_ONCE
                .iter()
                .find(|(_, out)| out == label)
                .and_then(|(kept, _)| index(kept).map(|j| (kept, j)))
                .filter(|(_, j)| cells(*j) == these);
            if let Some((kept, _)) = same_as {
                equal.push(format!("{label} = {kept}"));
                continue;
            }
            let mut r = vec![label.clone()];
            r.extend(these);
            rows.push(r);
        }
    }
    if !equal.is_empty() {
        rows.push(vec![format!(
            "Shown once, equal in every phase: {}",
            equal.join("; ")
        )]);
    }
    if !zero.is_empty() {
        rows.push(vec![format!(
            "Zero in every phase, not shown: {}",
            zero.join(", ")
        )]);
    }
    Table { header, rows }
}

/// One phase's per-host table: the fleet's totals first, then each host and instance.
pub fn host_table(p: &PhaseStats) -> Table {
    let mut header = vec!["host".to_string()];
    header.extend(HOST_COLUMNS.iter().map(|c| c.to_string()));
    let rows = p
        .hosts
        .iter()
        .map(|r| {
            let mut row = vec![r.name.clone()];
            row.extend(r.cells.iter().map(|c| c.text.clone()));
            row
        })
        .collect();
    Table { header, rows }
}

/// Every phase's per-host table with its title (phases without hosts left out).
pub fn host_tables(a: &Analysis) -> Vec<(String, Table)> {
    a.phases
        .iter()
        .filter(|p| !p.hosts.is_empty())
        .map(|p| (format!("Hosts in phase {}", p.name), host_table(p)))
        .collect()
}

/// Two runs side by side, phase by phase (matched by name), with B - A.
pub fn compare_table(ra: &Run, a: &Analysis, rb: &Run, b: &Analysis) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    for (i, pa) in a.phases.iter().enumerate() {
        // By name; a phase whose name B lacks pairs with B's phase in the same place,
        // if that one's name A lacks too (runs whose phases were renamed).
        let by_place = b
            .phases
            .get(i)
            .filter(|pb| !a.phases.iter().any(|p| p.name == pb.name));
        let Some(pb) = b.phases.iter().find(|p| p.name == pa.name).or(by_place) else {
            continue;
        };
        let title = if pa.name == pb.name {
            pa.name.clone()
        } else {
            format!("{} (A) vs {} (B)", pa.name, pb.name)
        };
        let keyed = |rows: &[(String, Cell)]| {
            let mut section = String::new();
            rows.iter()
                .map(|(l, c)| {
                    if let Some(t) = l.strip_prefix("## ") {
                        section = t.to_string();
                    }
                    ((section.clone(), l.clone()), c.clone())
                })
                .collect::<Vec<_>>()
        };
        let kb = keyed(&pb.rows);
        let mut rows = Vec::new();
        for ((section, label), ca) in keyed(&pa.rows) {
            if let Some(t) = label.strip_prefix("## ") {
                rows.push(vec![t.to_string()]);
                continue;
            }
            let cb = kb
                .iter()
                .find(|((s, l), _)| *s == section && *l == label)
                .map(|(_, c)| c.clone())
                .unwrap_or_else(Cell::none);
            rows.push(vec![
                label,
                ca.text.clone(),
                cb.text.clone(),
                diff(&ca, &cb),
            ]);
        }
        let header = vec![
            "figure".into(),
            ra.id.clone(),
            rb.id.clone(),
            "difference".into(),
        ];
        out.push((title, Table { header, rows }));
    }
    out
}

/// B - A of one figure: the difference and its share of A (`0` when it rounds to
/// nothing), `differs` for texts that differ, nothing for equal texts.
fn diff(a: &Cell, b: &Cell) -> String {
    match (a.value, b.value) {
        (Some(x), Some(y)) => {
            let d = y - x;
            let pct = if x.abs() > 1e-9 {
                format!(" ({:+.1}%)", 100.0 * d / x)
            } else {
                String::new()
            };
            let text = fmt_num(d, a.decimals);
            if text.chars().all(|c| matches!(c, '0' | '.' | ',')) {
                return "0".into();
            }
            let sign = if d > 0.0 { "+" } else { "" };
            format!("{sign}{text}{pct}")
        }
        _ if a.text != b.text => "differs".into(),
        _ => String::new(),
    }
}

/// The table as aligned plain text: numbers to the right, a section title in brackets.
pub fn to_text(t: &Table) -> String {
    let cols = t.header.len();
    let mut w = vec![0usize; cols];
    for r in std::iter::once(&t.header).chain(t.rows.iter().filter(|r| r.len() > 1)) {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, r: &[String]| {
        for (i, c) in r.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            if i == 0 {
                let _ = write!(s, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(s, "  {}{c}", " ".repeat(pad));
            }
        }
        s.push('\n');
    };
    line(&mut s, &t.header);
    let total: usize = w.iter().sum::<usize>() + 2 * (cols - 1);
    s.push_str(&"-".repeat(total));
    s.push('\n');
    for r in &t.rows {
        if r.len() == 1 {
            let _ = writeln!(s, "[{}]", r[0]);
        } else {
            line(&mut s, r);
        }
    }
    s
}
