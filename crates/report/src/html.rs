//! `report.html`: one file with the charts inlined as SVG and no script or style from
//! anywhere else, so it opens from a disk, a mail attachment or an archive years later.
//!
//! A few lines of inline script check on load that every chart rendered and say so in
//! the page (`#selfcheck`), which is what the browser test reads. The sections and their
//! order are [`super::page`]'s; here is only how each is written in HTML.

use std::fmt::Write;

use super::analyze::{Analysis, HOST_NOTE};
use super::charts::Drawn;
use super::footprint::{cpu_table, memory_table, note as footprint_note, Footprint};
use super::load::Run;
use super::page::{self, Page};
use super::table::Table;

/// Text made inert in HTML: every string from the data goes through it.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn table_html(t: &Table) -> String {
    let mut s = String::from("<table>\n<thead><tr>");
    for h in &t.header {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for r in &t.rows {
        if r.len() == 1 {
            let _ = writeln!(
                s,
                "<tr class=\"section\"><th colspan=\"{}\">{}</th></tr>",
                t.header.len(),
                esc(&r[0])
            );
        } else {
            s.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                let tag = if i == 0 { "th" } else { "td" };
                let _ = write!(s, "<{tag}>{}</{tag}>", esc(c));
            }
            s.push_str("</tr>\n");
        }
    }
    s.push_str("</tbody></table>\n");
    s
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1060px;\
color:#222;padding:0 1em}table{border-collapse:collapse;margin:1em 0;font-size:14px}\
th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}\
th:first-child{text-align:left;font-weight:normal}thead th{font-weight:bold;background:#f3f3f3}\
tr.section th{text-align:left;font-weight:bold;background:#eef3fb;padding-top:8px}\
.problems{background:#fff1f0;border:1px solid #e99;padding:.5em 1em}\
.capacity{font-size:1.1em;background:#f5f9f0;border:1px solid #bcd;padding:.7em 1em}\
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}code{font-size:13px}";

const CHECK: &str = "<script>\n(function(){var s=document.querySelectorAll('figure svg');\
var ok=0;for(var i=0;i<s.length;i++){var b=s[i].getBBox();if(b.width>0&&b.height>0)ok++;}\
var e=document.getElementById('selfcheck');e.textContent='charts rendered: '+ok+'/'+s.length;\
e.setAttribute('data-ok',(ok===s.length&&s.length>0)?'yes':'no');})();\n</script>\n";

fn figure_html(c: &Drawn) -> String {
    let svg = c.svg.find("<svg").map_or("", |i| &c.svg[i..]);
    format!(
        "<figure id=\"chart-{}\">\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
        c.name,
        esc(&c.caption)
    )
}

/// The page being written.
struct Html(String);

impl Page for Html {
    fn title(&mut self, run_id: &str) {
        let title = format!("Red packet run {run_id}");
        let _ = write!(
            self.0,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
            esc(&title),
            esc(&title)
        );
    }

    fn verdict(&mut self, lines: &[String]) {
        let s = &mut self.0;
        s.push_str("<div class=\"verdict\">\n");
        for (i, l) in lines.iter().enumerate() {
            let tag = if i == 0 { "strong" } else { "span" };
            let _ = writeln!(s, "<p><{tag}>{}</{tag}></p>", esc(l));
        }
        s.push_str("</div>\n");
    }

    fn problems(&mut self, problems: &[String]) {
        let s = &mut self.0;
        s.push_str("<div class=\"problems\"><strong>Missing or damaged</strong><ul>\n");
        for p in problems {
            let _ = writeln!(s, "<li>{}</li>", esc(p));
        }
        s.push_str("</ul></div>\n");
    }

    fn lead_charts(&mut self, charts: &[&Drawn]) {
        self.0.push_str(
            "<h2>Rate and latency</h2>\n<p id=\"selfcheck\">charts not checked (scripts off)</p>\n",
        );
        for c in charts {
            self.0.push_str(&figure_html(c));
        }
    }

    fn phase_table(&mut self, table: &Table) {
        self.0.push_str("<h2>Phases</h2>\n");
        self.0.push_str(&table_html(table));
    }

    fn host_tables(&mut self, tables: &[(String, Table)]) {
        let s = &mut self.0;
        let _ = writeln!(s, "<h2>Hosts</h2>\n<p>{}</p>", esc(HOST_NOTE));
        for (title, t) in tables {
            let _ = writeln!(s, "<h3>{}</h3>", esc(title));
            s.push_str(&table_html(t));
        }
    }

    fn capacity(&mut self, sentence: &str) {
        let _ = writeln!(self.0, "<p class=\"capacity\">{}</p>", esc(sentence));
    }

    fn footprint(&mut self, f: &Footprint) {
        let s = &mut self.0;
        let _ = writeln!(s, "<h2>Footprint on {}</h2>", esc(&f.host));
        if let Some(h) = &f.held {
            let _ = writeln!(s, "<p>{}</p>", esc(&h.sentence()));
        }
        s.push_str(&table_html(&memory_table(f)));
        s.push_str(&table_html(&cpu_table(f)));
        let _ = writeln!(s, "<p>{}</p>", esc(footprint_note()));
    }

    fn more_charts(&mut self, charts: &[&Drawn]) {
        self.0.push_str("<h2>More charts</h2>\n");
        for c in charts {
            self.0.push_str(&figure_html(c));
        }
    }

    fn run_lines(&mut self, lines: &[String]) {
        self.0.push_str("<h2>The run</h2>\n");
        for l in lines {
            let _ = writeln!(self.0, "<p>{}</p>", esc(l));
        }
    }

    fn tuning(&mut self, table: &Table) {
        self.0.push_str("<h2>Host tuning during the run</h2>\n");
        self.0.push_str(&table_html(table));
    }

    fn commands(&mut self, commands: &[String]) {
        self.0.push_str("<h2>Commands</h2>\n<ul>\n");
        for c in commands {
            let _ = writeln!(self.0, "<li><code>{}</code></li>", esc(c));
        }
        self.0.push_str("</ul>\n");
    }

    fn finish(mut self) -> String {
        self.0.push_str(CHECK);
        self.0.push_str("</body>\n</html>\n");
        self.0
    }
}

/// The whole page ([`page::write`] in HTML).
pub fn html(run: &Run, a: &Analysis, charts: &[Drawn]) -> String {
    page::write(Html(String::new()), run, a, charts)
}
