//! `report.md`: the same page as report.html in Markdown, the charts as links to their
//! PNGs with the caption below, for a repository or a mail.
//!
//! The sections and their order are [`super::page`]'s; here is only how each is written
//! in Markdown. Every string that comes from the data goes through [`md_escape`], as
//! every one in the HTML page goes through its own escaping.

use std::fmt::Write;

use super::analyze::{Analysis, HOST_NOTE};
use super::charts::Drawn;
use super::footprint::{cpu_table, memory_table, note as footprint_note, Footprint};
use super::load::Run;
use super::page::{self, Page};
use super::table::Table;

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

/// The table in Markdown: numbers right-aligned, a section title in bold across the row.
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

/// A chart as an image link to its PNG, its caption below.
fn figure(s: &mut String, c: &Drawn) {
    let e = md_escape;
    let _ = writeln!(
        s,
        "![{}](charts/{}.png)\n\n*{}*\n",
        e(&c.title),
        c.name,
        e(&c.caption)
    );
}

/// The page being written.
struct Markdown(String);

impl Page for Markdown {
    fn title(&mut self, run_id: &str) {
        let _ = write!(self.0, "# Red packet run {}\n\n", md_escape(run_id));
    }

    fn verdict(&mut self, lines: &[String]) {
        let s = &mut self.0;
        for (i, l) in lines.iter().enumerate() {
            if i == 0 {
                let _ = writeln!(s, "**{}**  ", md_escape(l));
            } else {
                let _ = writeln!(s, "{}  ", md_escape(l));
            }
        }
        s.push('\n');
    }

    fn problems(&mut self, problems: &[String]) {
        let s = &mut self.0;
        s.push_str("**Missing or damaged:**\n\n");
        for p in problems {
            let _ = writeln!(s, "- {}", md_escape(p));
        }
        s.push('\n');
    }

    fn lead_charts(&mut self, charts: &[&Drawn]) {
        self.0.push_str("## Rate and latency\n\n");
        for c in charts {
            figure(&mut self.0, c);
        }
    }

    fn phase_table(&mut self, table: &Table) {
        self.0.push_str("## Phases\n\n");
        self.0.push_str(&to_markdown(table));
    }

    fn host_tables(&mut self, tables: &[(String, Table)]) {
        let s = &mut self.0;
        let _ = writeln!(s, "\n## Hosts\n\n{HOST_NOTE}");
        for (title, t) in tables {
            let _ = write!(s, "\n### {}\n\n{}", md_escape(title), to_markdown(t));
        }
    }

    fn capacity(&mut self, sentence: &str) {
        let _ = writeln!(self.0, "\n{}", md_escape(sentence));
    }

    fn footprint(&mut self, f: &Footprint) {
        let s = &mut self.0;
        let _ = writeln!(s, "\n## Footprint on {}\n", md_escape(&f.host));
        if let Some(h) = &f.held {
            let _ = writeln!(s, "{}\n", md_escape(&h.sentence()));
        }
        s.push_str(&to_markdown(&memory_table(f)));
        s.push('\n');
        s.push_str(&to_markdown(&cpu_table(f)));
        let _ = writeln!(s, "\n{}", footprint_note());
    }

    fn more_charts(&mut self, charts: &[&Drawn]) {
        self.0.push_str("\n## More charts\n\n");
        for c in charts {
            figure(&mut self.0, c);
        }
    }

    fn run_lines(&mut self, lines: &[String]) {
        self.0.push_str("\n## The run\n\n");
        for l in lines {
            let _ = writeln!(self.0, "{}  ", md_escape(l));
        }
    }

    fn tuning(&mut self, table: &Table) {
        self.0.push_str("\n## Host tuning during the run\n\n");
        self.0.push_str(&to_markdown(table));
    }

    fn commands(&mut self, commands: &[String]) {
        self.0.push_str("\n## Commands\n\n");
        for c in commands {
            let _ = writeln!(self.0, "- {}", md_escape(c));
        }
    }

    fn finish(self) -> String {
        self.0
    }
}

/// The whole page ([`page::write`] in Markdown).
pub fn markdown(run: &Run, a: &Analysis, charts: &[Drawn]) -> String {
    page::write(Markdown(String::new()), run, a, charts)
}
