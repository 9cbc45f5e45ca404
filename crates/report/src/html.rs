//! `report.html` and `report.md`, written into the run folder.
//!
//! The HTML is one file with the charts inlined as SVG and no script or style from
//! anywhere else, so it opens from a disk, a mail attachment or an archive years later.
//! A few lines of inline script check on load that every chart rendered and say so in
//! the page (`#selfcheck`), which is what the browser test reads.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use super::analyze::{Analysis, HOST_NOTE};
use super::charts::Drawn;
use super::footprint::{cpu_table, footprints, memory_table, note as footprint_note};
use super::load::Run;
use super::render::{host_tables, md_escape, phase_table, preamble, to_markdown, verdict, Table};

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

/// Every host's tuning values in one table, hosts across.
fn tuning_table(run: &Run) -> Option<Table> {
    let hosts: Vec<_> = run.hosts.iter().filter(|h| !h.tuning.is_empty()).collect();
    if hosts.is_empty() {
        return None;
    }
    // Keys in the order hosts first give them; looked up by hash (a host's file can
    // hold many keys: no pass over the keys per key).
    let mut keys: Vec<&str> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let values: Vec<HashMap<&str, &str>> = hosts
        .iter()
        .map(|h| {
            let mut m = HashMap::new();
            for (k, v) in &h.tuning {
                if seen.insert(k) {
                    keys.push(k);
                }
                m.entry(k.as_str()).or_insert(v.as_str());
            }
            m
        })
        .collect();
    let mut header = vec!["setting".to_string()];
    header.extend(hosts.iter().map(|h| h.name.clone()));
    let rows = keys
        .iter()
        .map(|k| {
            let mut r = vec![k.to_string()];
            r.extend(values.iter().map(|m| m.get(k).unwrap_or(&"-").to_string()));
            r
        })
        .collect();
    Some(Table { header, rows })
}

fn commands(run: &Run) -> Vec<String> {
    run.meta
        .commands
        .iter()
        .map(|c| match c {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => {
                let host = o.get("host").and_then(|v| v.as_str()).unwrap_or("?");
                let cmd = o.get("command").and_then(|v| v.as_str()).unwrap_or("?");
                format!("{host}: {cmd}")
            }
            other => other.to_string(),
        })
        .collect()
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

/// The charts that matter most, shown right under the verdict; the rest follow the
/// tables.
pub const FIRST_CHARTS: [&str; 2] = ["qps", "latency"];

fn figure_html(c: &Drawn) -> String {
    let svg = c.svg.find("<svg").map_or("", |i| &c.svg[i..]);
    format!(
        "<figure id=\"chart-{}\">\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
        c.name,
        esc(&c.caption)
    )
}

/// The page: the verdict, what is missing, the rate and latency charts, the phase table
/// and the host tables, the capacity line, the other charts, then the run's details.
pub fn html(run: &Run, a: &Analysis, charts: &[Drawn]) -> String {
    let mut s = String::new();
    let title = format!("Red packet run {}", run.id);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    s.push_str("<div class=\"verdict\">\n");
    for (i, l) in verdict(run, a).iter().enumerate() {
        let tag = if i == 0 { "strong" } else { "span" };
        let _ = writeln!(s, "<p><{tag}>{}</{tag}></p>", esc(l));
    }
    s.push_str("</div>\n");
    if !run.problems.is_empty() {
        s.push_str("<div class=\"problems\"><strong>Missing or damaged</strong><ul>\n");
        for p in &run.problems {
            let _ = writeln!(s, "<li>{}</li>", esc(p));
        }
        s.push_str("</ul></div>\n");
    }
    let (first, rest): (Vec<&Drawn>, Vec<&Drawn>) =
        charts.iter().partition(|c| FIRST_CHARTS.contains(&c.name));
    s.push_str(
        "<h2>Rate and latency</h2>\n<p id=\"selfcheck\">charts not checked (scripts off)</p>\n",
    );
    for c in first {
        s.push_str(&figure_html(c));
    }
    s.push_str("<h2>Phases</h2>\n");
    s.push_str(&table_html(&phase_table(a)));
    let hosts = host_tables(a);
    if !hosts.is_empty() {
        let _ = writeln!(s, "<h2>Hosts</h2>\n<p>{}</p>", esc(HOST_NOTE));
    }
    for (title, t) in hosts {
        let _ = writeln!(s, "<h3>{}</h3>", esc(&title));
        s.push_str(&table_html(&t));
    }
    if let Some(c) = &a.capacity {
        let _ = writeln!(s, "<p class=\"capacity\">{}</p>", esc(&c.sentence()));
    }
    for f in footprints(run) {
        let _ = writeln!(s, "<h2>Footprint on {}</h2>", esc(&f.host));
        if let Some(h) = &f.held {
            let _ = writeln!(s, "<p>{}</p>", esc(&h.sentence()));
        }
        s.push_str(&table_html(&memory_table(&f)));
        s.push_str(&table_html(&cpu_table(&f)));
        let _ = writeln!(s, "<p>{}</p>", esc(footprint_note()));
    }
    if !rest.is_empty() {
        s.push_str("<h2>More charts</h2>\n");
        for c in rest {
            s.push_str(&figure_html(c));
        }
    }
    s.push_str("<h2>The run</h2>\n");
    for l in preamble(run).iter().skip(1) {
        let _ = writeln!(s, "<p>{}</p>", esc(l));
    }
    if let Some(t) = tuning_table(run) {
        s.push_str("<h2>Host tuning during the run</h2>\n");
        s.push_str(&table_html(&t));
    }
    let cmds = commands(run);
    if !cmds.is_empty() {
        s.push_str("<h2>Commands</h2>\n<ul>\n");
        for c in cmds {
            let _ = writeln!(s, "<li><code>{}</code></li>", esc(&c));
        }
        s.push_str("</ul>\n");
    }
    s.push_str(CHECK);
    s.push_str("</body>\n</html>\n");
    s
}

/// The same order as the page, charts as links to their PNGs with the caption below.
/// Every string that comes from the data goes through [`md_escape`], as every one in
/// the page goes through `esc`.
pub fn markdown(run: &Run, a: &Analysis, charts: &[Drawn]) -> String {
    let e = md_escape;
    let mut s = format!("# Red packet run {}\n\n", e(&run.id));
    for (i, l) in verdict(run, a).iter().enumerate() {
        if i == 0 {
            let _ = writeln!(s, "**{}**  ", e(l));
        } else {
            let _ = writeln!(s, "{}  ", e(l));
        }
    }
    s.push('\n');
    if !run.problems.is_empty() {
        s.push_str("**Missing or damaged:**\n\n");
        for p in &run.problems {
            let _ = writeln!(s, "- {}", e(p));
        }
        s.push('\n');
    }
    let figure = |s: &mut String, c: &Drawn| {
        let _ = writeln!(
            s,
            "![{}](charts/{}.png)\n\n*{}*\n",
            e(&c.title),
            c.name,
            e(&c.caption)
        );
    };
    let (first, rest): (Vec<&Drawn>, Vec<&Drawn>) =
        charts.iter().partition(|c| FIRST_CHARTS.contains(&c.name));
    s.push_str("## Rate and latency\n\n");
    for c in first {
        figure(&mut s, c);
    }
    s.push_str("## Phases\n\n");
    s.push_str(&to_markdown(&phase_table(a)));
    let hosts = host_tables(a);
    if !hosts.is_empty() {
        let _ = writeln!(s, "\n## Hosts\n\n{HOST_NOTE}");
    }
    for (title, t) in hosts {
        let _ = write!(s, "\n### {}\n\n{}", e(&title), to_markdown(&t));
    }
    if let Some(c) = &a.capacity {
        let _ = writeln!(s, "\n{}", e(&c.sentence()));
    }
    for f in footprints(run) {
        let _ = writeln!(s, "\n## Footprint on {}\n", e(&f.host));
        if let Some(h) = &f.held {
            let _ = writeln!(s, "{}\n", e(&h.sentence()));
        }
        s.push_str(&to_markdown(&memory_table(&f)));
        s.push('\n');
        s.push_str(&to_markdown(&cpu_table(&f)));
        let _ = writeln!(s, "\n{}", footprint_note());
    }
    if !rest.is_empty() {
        s.push_str("\n## More charts\n\n");
        for c in rest {
            figure(&mut s, c);
        }
    }
    s.push_str("\n## The run\n\n");
    for l in preamble(run).iter().skip(1) {
        let _ = writeln!(s, "{}  ", e(l));
    }
    if let Some(t) = tuning_table(run) {
        s.push_str("\n## Host tuning during the run\n\n");
        s.push_str(&to_markdown(&t));
    }
    let cmds = commands(run);
    if !cmds.is_empty() {
        s.push_str("\n## Commands\n\n");
        for c in cmds {
            let _ = writeln!(s, "- {}", e(&c));
        }
    }
    s
}
