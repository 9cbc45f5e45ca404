//! Tables as text: the terminal view, Markdown, and the side-by-side comparison.
//!
//! The phase table has a row per figure and a column per phase, so the eye runs along
//! a row to see one figure change as the load rises, as in the old article's tables.

use std::fmt::Write;

use super::analyze::{Analysis, Cell, PhaseStats, HOST_COLUMNS, HOST_NOTE};
use super::load::Run;
use super::numbers::{fmt_num, MANY};
use redpacket_formats::{LoadgenSummary, PhaseSummary};

/// A rectangular table: `header` then rows; a row with one cell is a section title.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The phase table: figures down, phases across.
pub fn phase_table(a: &Analysis) -> Table {
    let mut header = vec!["figure".to_string()];
    header.extend(a.phases.iter().map(|p| p.name.clone()));
    let mut rows = Vec::new();
    if let Some(first) = a.phases.first() {
        for (i, (label, _)) in first.rows.iter().enumerate() {
            if let Some(title) = label.strip_prefix("## ") {
                rows.push(vec![title.to_string()]);
                continue;
            }
            let mut r = vec![label.clone()];
            for p in &a.phases {
                r.push(p.rows.get(i).map_or("-".into(), |(_, c)| c.text.clone()));
            }
            rows.push(r);
        }
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

/// Text from the data (host and phase names, reasons, anything a host wrote) made inert
/// in Markdown, the one escaping function for report.md: every data-derived string goes
/// through it. What could become markup is escaped with a backslash: HTML (`<`, `>`),
/// links and images (`[`, `]`), code (`` ` ``), emphasis (`*`), table cells (`|`), the
/// backslash itself, and a heading's `#` at the start; line breaks
/// and control characters become spaces, so the text cannot open a new block. (`_`,
/// `&`, `~` and a leading `-` only restyle text, never make a tag, a link or a heading:
/// left as written, so names such as `failed_hosts` and empty cells `-` read as they
/// are.)
pub fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let body = s.trim_start();
    if body.starts_with('#') {
        out.push('\\');
    }
    for c in body.chars() {
        match c {
            '\\' | '`' | '*' | '[' | ']' | '<' | '>' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

pub fn to_markdown(t: &Table) -> String {
    let esc = md_escape;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| {} |",
        t.header
            .iter()
            .map(|h| esc(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        s,
        "|{}",
        t.header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for r in &t.rows {
        if r.len() == 1 {
            let mut cells = vec![format!("**{}**", esc(&r[0]))];
            cells.resize(t.header.len(), String::new());
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        } else {
            let _ = writeln!(
                s,
                "| {} |",
                r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            );
        }
    }
    s
}

/// The run's header lines: id, commit, hosts, and what is missing.
pub fn preamble(run: &Run) -> Vec<String> {
    let m = &run.meta;
    let mut v = vec![format!("Run {}", run.id)];
    if !m.description.is_empty() {
        v.push(m.description.clone());
    }
    if !m.git_commit.is_empty() {
        v.push(format!("git commit {}", m.git_commit));
    }
    let hosts: Vec<String> = run
        .hosts
        .iter()
        .map(|h| {
            let role = match h.role() {
                super::load::Role::Server => "server",
                super::load::Role::Loadgen => "loadgen",
                super::load::Role::Unknown => "unknown role",
            };
            let mut what = vec![role.to_string()];
            if !h.address.is_empty() {
                what.push(h.address.clone());
            }
            if h.has_instances() {
                what.push(format!("{} instances", h.servers.len()));
            }
            format!("{} ({})", h.name, what.join(", "))
        })
        .collect();
    v.push(format!("hosts: {}", hosts.join(", ")));
    for h in &run.hosts {
        if let Some(m) = h
            .summary
            .as_ref()
            .map(|s| &s.money)
            .filter(|m| !m.is_empty())
        {
            let kv: Vec<String> = serde_json::to_value(m)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            v.push(format!(
                "{} money (summary.json): {}",
                h.name,
                kv.join(", ")
            ));
        }
        // Many instances: one line when every ledger balances, else the ones that do not.
        let sums: Vec<_> = h
            .servers
            .iter()
            .filter_map(|log| log.summary.as_ref().map(|s| (log, s)))
            .collect();
        let all_balanced = sums
            .iter()
            .all(|(_, s)| s.shake_balanced && s.send_balanced);
        if sums.len() > MANY && all_balanced {
            v.push(format!(
                "{} final ledgers of {} instances: shake packets balanced, user-to-user packets balanced",
                h.name,
                sums.len()
            ));
            continue;
        }
        let many = sums.len() > MANY;
        for (log, sum) in sums {
            if many && sum.shake_balanced && sum.send_balanced && log.lost_lives().is_empty() {
                continue;
            }
            let word = |b: bool| if b { "balanced" } else { "NOT BALANCED" };
            // After a restart the account covers the last life only.
            let life = if sum.life > 1 {
                format!(" (life {} only)", sum.life)
            } else {
                String::new()
            };
            v.push(format!(
                "{} final ledger{life}: shake packets {}, user-to-user packets {}",
                log.label(&h.name),
                word(sum.shake_balanced),
                word(sum.send_balanced)
            ));
        }
    }
    // Over every server process, when there is more than one or clients to match; and
    // every server whose money cannot be reconciled, by name.
    if let Some(m) = super::money::reconcile(run) {
        v.extend(m.unreconciled.iter().cloned());
        if m.accounts + m.missing.len() > 1 || m.clients > 0 || !m.clients_missing.is_empty() {
            v.push(m.sentence());
        }
    }
    v
}

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

/// What a reader wants first: passed or failed (the load generators' thresholds, every
/// ledger, client against server money; `INCOMPLETE` when nothing failed but money
/// cannot be reconciled or the clients' total lacks a host), users, the highest rate held without an error
/// or timeout, the p99 of each phase (the report's own figure, as in the table) and the
/// money line. The first line starts `Verdict: `.
pub fn verdict(run: &Run, a: &Analysis) -> Vec<String> {
    let sums: Vec<&LoadgenSummary> = run
        .hosts
        .iter()
        .filter_map(|h| h.summary.as_ref())
        .collect();
    let money = super::money::reconcile(run);
    let mut fails: Vec<String> = sums
        .iter()
        .flat_map(|s| s.verdict.failures.iter().cloned())
        .collect();
    // Untrusted input the report refused, or figures no run produces: never a pass.
    if run.refused > 0 {
        fails.push(format!(
            "{} file(s) or name(s) of the run folder refused as unsafe (see what is missing \
             or damaged)",
            run.refused
        ));
    }
    if !run.implausible.is_empty() {
        fails.push(format!(
            "{} figure(s) no run can produce (see what is missing or damaged)",
            run.implausible.len()
        ));
    }
    if fails.is_empty() && sums.iter().any(|s| !s.verdict.passed) {
        fails.push("a load generator did not pass".into());
    }
    // What cannot be judged: money whose ledger or client total is missing.
    let mut gaps = Vec::new();
    if let Some(m) = &money {
        if !m.unbalanced.is_empty() {
            fails.push(format!(
                "ledger NOT BALANCED on {}",
                m.unbalanced.join(", ")
            ));
        } else if !m.servers_balanced && m.unreconciled.is_empty() {
            fails.push("no server left its final account".into());
        }
        if m.agree() == Some(false) {
            fails.push("client and server money DIFFER".into());
        }
        gaps = m.gaps();
    }
    // Load generators without a summary (killed, or their host lost): left out of the
    // totals below, which only a summary gives.
    let cut: Vec<&str> = run
        .hosts
        .iter()
        .filter(|h| h.loadgen_cut_short())
        .map(|h| h.name.as_str())
        .collect();
    let without = if cut.is_empty() {
        String::new()
    } else {
        format!(
            " (without {}: no summary.json, see what is missing)",
            cut.join(", ")
        )
    };
    let mut v = vec![if sums.is_empty() && money.is_none() && fails.is_empty() {
        "Verdict: none (no load generator summary and no server account)".to_string()
    } else if fails.is_empty() && gaps.is_empty() {
        "Verdict: PASSED".to_string()
    } else if fails.is_empty() {
        format!("Verdict: INCOMPLETE: {}", gaps.join("; "))
    } else {
        fails.extend(gaps);
        format!("Verdict: FAILED: {}", fails.join("; "))
    }];
    if !sums.is_empty() {
        let users = sums
            .iter()
            .fold(0u64, |n, s| n.saturating_add(s.connections.connected));
        v.push(format!("users connected at the end: {users}{without}"));
        let mut best: Option<(String, f64)> = None;
        let limit = super::sanity::rate_limit(run);
        for p in &a.phases {
            let mine: Vec<&PhaseSummary> = sums
                .iter()
                .filter_map(|s| s.phases.iter().find(|q| q.name == p.name))
                .collect();
            let clean = mine.iter().all(|q| q.errors == 0 && q.timeouts == 0);
            let rate: f64 = mine.iter().map(|q| q.achieved_qps).sum();
            let plausible = super::sanity::plausible_rate(rate, limit);
            if !mine.is_empty() && clean && plausible && best.as_ref().is_none_or(|b| rate > b.1) {
                best = Some((p.name.clone(), rate));
            }
        }
        v.push(match best {
            Some((n, r)) => format!(
                "highest rate held without an error or timeout: {} shakes/s (phase {n}){without}",
                fmt_num(r, 0)
            ),
            None => "no phase ran without an error or timeout".into(),
        });
    }
    let p99: Vec<String> = a
        .phases
        .iter()
        // A phase that asked nothing (connect, idle) has no latency of its own.
        .filter(|p| p.target_qps > 0.0)
        .filter_map(|p| {
            let (_, c) = p.rows.iter().find(|(l, _)| l == "p99")?;
            c.value.map(|x| format!("{} {} ms", p.name, fmt_num(x, 2)))
        })
        .collect();
    if !p99.is_empty() {
        v.push(format!("latency, p99 of each phase: {}", p99.join(", ")));
    }
    if let Some(m) = &money {
        v.push(m.sentence());
    }
    v
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
