//! `check`: can this host hold N connections as it is, and if not, what to raise first.
//!
//! A check is a list of [`Item`]s (open-files limits, memory, ports, CPUs and every key
//! of the role's `sysctl/*.conf`), each with its live value and the value wanted for
//! the connections asked. Each item is of one [`Kind`]:
//!
//! - a **limit** bounds the count (open files per process and for the host,
//!   `fs.nr_open`, memory, ephemeral ports, keys marked `scale=conn`): it says how many
//!   connections it allows, the smallest of those is what the host can hold, and the
//!   item that sets it is the one to raise first;
//! - **advice** is a setting that does not bound the count (`somaxconn`, backlogs, TCP
//!   timers, anything of fixed value): when short it is listed, never lowers what the
//!   host can hold, and fails the check only with `--strict`;
//! - **info** is shown, never judged.
//!
//! [`judge`] rules on one sysctl key, [`assess`] builds the items of each role from a
//! [`HostView`] (what was read), and this file renders a [`Report`] for people and, as
//! one JSON object, for scripts. The same code gives the server's start-up line and
//! the load generator's refusal before a run.

pub mod assess;
pub mod judge;

use std::fmt::Write as _;

use serde::Serialize;

pub use crate::conf::Scope;
pub use assess::{loadgen, one_host, server, HostView, LoadgenAsk, OneHostAsk, ServerAsk};

/// Which program's host is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Loadgen,
}

/// Whether an item bounds the count (`kind` in `check --json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Bounds the count: `holds` is how many it allows.
    Limit,
    /// Does not bound the count: listed when short, fails only `--strict`.
    Advice,
    /// Shown, never judged.
    Info,
}

/// One thing checked. The serialised fields are the JSON schema of `check --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    pub name: String,
    pub value: String,
    pub wanted: String,
    pub ok: bool,
    /// False for what is only shown (`check=info`, a key this kernel lacks).
    pub judged: bool,
    pub scope: Scope,
    /// What the item limits.
    pub limits: String,
    /// Whether it bounds the count.
    pub kind: Kind,
    /// How `wanted` is compared, for people: `>=`, `<=`, `=`, `covers`, `has`, or words
    /// for what is only shown.
    #[serde(skip)]
    pub op: &'static str,
    /// The most connections this item allows as it is: `Some` for a limit only.
    #[serde(skip)]
    pub holds: Option<u64>,
    /// What to do when it is short: one actionable sentence.
    #[serde(skip)]
    pub fix: String,
}

impl Item {
    /// One line for the `advice` list: key, value, wanted, why it matters.
    pub fn advice_line(&self) -> String {
        format!(
            "{} is {}, wanted {} {}: {}",
            self.name, self.value, self.op, self.wanted, self.limits
        )
    }
}

/// A whole check. Serialises to the one JSON object of `check --json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: u32,
    pub role: Role,
    pub asked: u64,
    /// What the limits allow together: the smallest count any of them allows.
    pub can_hold: u64,
    /// The verdict, as the exit code gives it: the host can hold what was asked (and,
    /// with `strict`, no advice is short).
    pub ok: bool,
    /// The limit that sets `can_hold`, with its fix, when that is short of `asked`.
    pub first_to_raise: String,
    pub items: Vec<Item>,
    /// One line per advice item that is short ([`Item::advice_line`]).
    pub advice: Vec<String>,
    /// Whether short advice fails the check.
    pub strict: bool,
}

impl Report {
    /// Sums up `items`: the host holds the smallest count any limit allows.
    pub fn new(role: Role, asked: u64, items: Vec<Item>) -> Report {
        let can_hold = items
            .iter()
            .filter(|i| i.kind == Kind::Limit)
            .filter_map(|i| i.holds)
            .min()
            .unwrap_or(u64::MAX);
        let holds_asked = can_hold >= asked;
        let first_to_raise = if holds_asked {
            String::new()
        } else {
            items
                .iter()
                .filter(|i| i.kind == Kind::Limit && !i.ok)
                .min_by_key(|i| i.holds.unwrap_or(u64::MAX))
                .map(|i| format!("{}: {}", i.name, i.fix))
                .unwrap_or_default()
        };
        let advice = items
            .iter()
            .filter(|i| i.kind == Kind::Advice && !i.ok)
            .map(Item::advice_line)
            .collect();
        Report {
            schema: 1,
            role,
            asked,
            can_hold,
            ok: holds_asked,
            first_to_raise,
            items,
            advice,
            strict: false,
        }
    }

    /// The same report under `--strict`: short advice fails it too.
    pub fn strict(mut self, strict: bool) -> Report {
        self.strict = strict;
        self.ok = self.can_hold >= self.asked && (!strict || self.advice.is_empty());
        self
    }

    /// 0 when the check passes, 1 when it does not.
    pub fn exit_code(&self) -> i32 {
        if self.ok {
            0
        } else {
            1
        }
    }

    /// Limits that are short, binding ones first.
    pub fn short(&self) -> Vec<&Item> {
        let mut v: Vec<&Item> = self.of(Kind::Limit).filter(|i| !i.ok).collect();
        v.sort_by_key(|i| i.holds.unwrap_or(u64::MAX));
        v
    }

    /// The limit that sets `can_hold` (the first listed of equals).
    pub fn binding(&self) -> Option<&Item> {
        self.of(Kind::Limit)
            .filter(|i| i.holds.is_some())
            .min_by_key(|i| i.holds)
    }

    fn of(&self, kind: Kind) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |i| i.kind == kind)
    }

    /// The one verdict line: what the host holds, what to raise first, and how much
    /// advice follows.
    pub fn summary(&self) -> String {
        let what = match self.role {
            Role::Server => "connections",
            Role::Loadgen => "users",
        };
        let holds = if self.can_hold == u64::MAX {
            "no limit found on the".to_string()
        } else {
            self.can_hold.to_string()
        };
        let n = self.advice.len();
        let advice = match n {
            0 => String::new(),
            1 => "1 advice item".to_string(),
            _ => format!("{n} advice items"),
        };
        let head = format!(
            "this host can hold {holds} {what} as it is (asked {})",
            self.asked
        );
        if self.can_hold < self.asked {
            format!("SHORT: {head}; raise first: {}", self.first_to_raise)
        } else if !self.ok {
            let are = if n == 1 { "is" } else { "are" };
            format!("SHORT (--strict): {head}, but {advice} below {are} short")
        } else if n > 0 {
            format!("ok: {head}; {advice} below (only --strict fails on advice)")
        } else {
            format!("ok: {head}")
        }
    }

    /// The report for people: the verdict, the limits (then the other fixes), the
    /// advice (then its fixes), and what is only shown.
    pub fn human(&self) -> String {
        let w = |f: fn(&Item) -> usize| self.items.iter().map(f).max().unwrap_or(0);
        let (nw, vw) = (w(|i| i.name.len()), w(|i| i.value.len()));
        let ww = w(|i| i.op.len() + 1 + i.wanted.len());
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.summary());
        let sections = [
            (
                Kind::Limit,
                "limits (each bounds the count; the smallest is what the host can hold):",
            ),
            (
                Kind::Advice,
                "advice (settings that do not bound the count; only --strict fails on them):",
            ),
            (Kind::Info, "shown, not judged:"),
        ];
        for (kind, title) in sections {
            if self.of(kind).next().is_none() {
                continue;
            }
            let _ = writeln!(s, "{title}");
            for i in self.of(kind) {
                let status = match (i.judged, i.ok) {
                    (false, _) => "info",
                    (true, true) => "ok",
                    (true, false) => "SHORT",
                };
                let wanted = format!("{} {}", i.op, i.wanted).trim().to_string();
                let _ = writeln!(
                    s,
                    "{status:<5}  {:<nw$}  {:<vw$}  {wanted:<ww$}  {:<7}  {}",
                    i.name,
                    i.value,
                    i.scope.as_str(),
                    i.limits
                );
            }
            // The fixes, once each (one file fixes several keys); the first limit's is
            // in the verdict line already.
            let mut seen: Vec<&str> = Vec::new();
            let short: Vec<&Item> = match kind {
                Kind::Limit => {
                    let v = self.short();
                    seen.extend(v.first().map(|i| i.fix.as_str()));
                    v
                }
                _ => self.of(kind).filter(|i| i.judged && !i.ok).collect(),
            };
            for i in short {
                if !seen.contains(&i.fix.as_str()) {
                    let then = if kind == Kind::Limit { "then" } else { "fix" };
                    let _ = writeln!(s, "  {then} {}: {}", i.name, i.fix);
                    seen.push(&i.fix);
                }
            }
        }
        s
    }

    /// The report as one line of JSON.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The server's start-up verdict on its own `--max-conns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartLine {
    /// The host can hold `--max-conns` (advice aside).
    pub ok: bool,
    /// One short line for the log.
    pub line: String,
}

/// What the server's start-up line is about: its worker CPUs, its control cap, and the
/// connections it will hold (its `--max-conns`, or the default derived from the
/// open-files limit, `given` telling which).
#[derive(Clone, Debug)]
pub struct StartAsk {
    pub cores: Vec<usize>,
    pub control_max_conns: u64,
    pub max_conns: u64,
    pub given: bool,
}

/// The server's start-up line: this host checked for the connections this process will
/// hold.
pub fn start_line(ask: &StartAsk) -> StartLine {
    let conf = crate::conf::Conf::server();
    let server_ask = ServerAsk {
        connections: ask.max_conns,
        instances: 1,
        cores: Some(ask.cores.clone()),
        control_max_conns: ask.control_max_conns,
    };
    let r = server(&server_ask, Some(&conf), &HostView::read(Some(&conf)));
    StartLine {
        ok: r.ok,
        line: start_summary(&r, ask.given),
    }
}

/// [`start_line`]'s words for a report of `asked` = the server's max-conns.
pub fn start_summary(r: &Report, given: bool) -> String {
    let of = if given {
        format!("--max-conns {}", r.asked)
    } else {
        format!("the default max-conns {}", r.asked)
    };
    let hold = match r.binding() {
        Some(b) if r.can_hold != u64::MAX => {
            format!("can hold {} of {of} ({})", r.can_hold, b.name)
        }
        _ => format!("no counted limit below {of}"),
    };
    let advice = match r.advice.len() {
        0 => "no advice".to_string(),
        1 => "1 advice item".to_string(),
        n => format!("{n} advice items"),
    };
    if r.ok && r.advice.is_empty() {
        format!("capacity: {hold}; {advice}")
    } else {
        format!(
            "capacity: {hold}; {advice}: redpacket-server check --connections {}",
            r.asked
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, ok: bool, holds: Option<u64>, fix: &str) -> Item {
        Item {
            name: name.into(),
            value: "1".into(),
            wanted: "2".into(),
            ok,
            judged: true,
            scope: Scope::Process,
            limits: "x".into(),
            kind: Kind::Limit,
            op: ">=",
            holds,
            fix: fix.into(),
        }
    }

    fn advice(name: &str, ok: bool) -> Item {
        Item {
            kind: Kind::Advice,
            holds: None,
            scope: Scope::Netns,
            limits: "bursts".into(),
            ..item(name, ok, None, "apply the file")
        }
    }

    #[test]
    fn the_smallest_capacity_binds_and_is_raised_first() {
        let r = Report::new(
            Role::Server,
            100,
            vec![
                item("a", false, Some(50), "raise a"),
                item("b", true, Some(1000), ""),
                item("c", false, Some(20), "raise c"),
                item("d", true, None, ""),
            ],
        );
        assert_eq!(r.can_hold, 20);
        assert!(!r.ok);
        assert_eq!(r.first_to_raise, "c: raise c");
        assert_eq!(r.binding().map(|i| i.name.as_str()), Some("c"));
        let h = r.human();
        assert!(h.starts_with("SHORT: this host can hold 20 connections as it is (asked 100); raise first: c: raise c\n"), "{h}");
        assert!(h.contains("  then a: raise a"), "{h}");
        let ok = Report::new(Role::Loadgen, 10, vec![item("b", true, Some(1000), "")]);
        assert!(ok.ok);
        assert_eq!(ok.first_to_raise, "");
        assert_eq!(
            ok.summary(),
            "ok: this host can hold 1000 users as it is (asked 10)"
        );
    }

    #[test]
    fn advice_is_listed_never_counted_and_fails_only_strict() {
        let items = vec![
            item("files", true, Some(1000), ""),
            advice("somaxconn", false),
            advice("backlog", true),
        ];
        let r = Report::new(Role::Server, 100, items.clone());
        assert_eq!(r.can_hold, 1000, "advice does not lower the count");
        assert!(r.ok && !r.strict);
        assert_eq!(r.exit_code(), 0);
        assert_eq!(r.advice, ["somaxconn is 1, wanted >= 2: bursts"]);
        assert_eq!(
            r.summary(),
            "ok: this host can hold 1000 connections as it is (asked 100); 1 advice item \
             below (only --strict fails on advice)"
        );
        let h = r.human();
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines[0], r.summary());
        assert!(lines[1].starts_with("limits ("), "{h}");
        assert!(lines[2].starts_with("ok     files"), "{h}");
        assert!(lines[3].starts_with("advice ("), "{h}");
        assert!(lines[4].starts_with("SHORT  somaxconn"), "{h}");
        assert!(lines[5].starts_with("ok     backlog"), "{h}");
        assert_eq!(lines[6], "  fix somaxconn: apply the file");
        let s = r.clone().strict(true);
        assert!(!s.ok && s.strict);
        assert_eq!(s.exit_code(), 1);
        assert_eq!(s.can_hold, 1000);
        assert_eq!(s.first_to_raise, "", "only a limit is raised first");
        assert_eq!(
            s.summary(),
            "SHORT (--strict): this host can hold 1000 connections as it is (asked 100), but \
             1 advice item below is short"
        );
        // Strict without short advice passes; short limits fail either way.
        let clean = Report::new(Role::Server, 100, items[..1].to_vec()).strict(true);
        assert!(clean.ok);
        let few = Report::new(Role::Server, 5000, items).strict(false);
        assert!(!few.ok);
        assert_eq!(few.exit_code(), 1);
    }

    #[test]
    fn json_follows_the_schema() {
        let r = Report::new(
            Role::Loadgen,
            100,
            vec![item("a", false, Some(5), "do"), advice("s", false)],
        );
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["role"], "loadgen");
        assert_eq!(v["asked"], 100);
        assert_eq!(v["can_hold"], 5);
        assert_eq!(v["ok"], false);
        assert_eq!(v["first_to_raise"], "a: do");
        assert_eq!(
            v["advice"],
            serde_json::json!(["s is 1, wanted >= 2: bursts"])
        );
        assert_eq!(v["strict"], false);
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "advice",
                "asked",
                "can_hold",
                "first_to_raise",
                "items",
                "ok",
                "role",
                "schema",
                "strict"
            ]
        );
        let i = &v["items"][0];
        assert_eq!(i["scope"], "process");
        assert_eq!(i["kind"], "limit");
        assert_eq!(v["items"][1]["kind"], "advice");
        let mut keys: Vec<&str> = i.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["judged", "kind", "limits", "name", "ok", "scope", "value", "wanted"]
        );
        let s: serde_json::Value = serde_json::from_str(&r.strict(true).json()).unwrap();
        assert_eq!(s["strict"], true);
    }

    #[test]
    fn the_start_line_judges_max_conns_in_one_short_line() {
        let r = Report::new(
            Role::Server,
            20_000,
            vec![
                Item {
                    name: "rlimit.nofile.hard".into(),
                    ..item("", false, Some(19_846), "raise it")
                },
                item("memory", true, Some(3_000_000), ""),
                advice("net.core.somaxconn", false),
                advice("net.ipv4.tcp_max_syn_backlog", false),
                advice("net.ipv4.tcp_fin_timeout", false),
            ],
        );
        let line = start_summary(&r, true);
        assert_eq!(
            line,
            "capacity: can hold 19846 of --max-conns 20000 (rlimit.nofile.hard); 3 advice \
             items: redpacket-server check --connections 20000"
        );
        assert!(line.len() < 160, "{}", line.len());
        let ok = Report::new(
            Role::Server,
            19_846,
            vec![item("rlimit.nofile.hard", true, Some(19_846), "")],
        );
        assert!(ok.ok);
        assert_eq!(
            start_summary(&ok, false),
            "capacity: can hold 19846 of the default max-conns 19846 (rlimit.nofile.hard); \
             no advice"
        );
    }
}
