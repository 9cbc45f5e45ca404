//! `check`: can this host hold N connections as it is, and if not, what to raise first.
//!
//! A check is a list of [`Item`]s (open-files limits, memory, ports, CPUs and every key
//! of the role's `sysctl/*.conf`), each with its live value, the value wanted for the
//! connections asked, and the most connections it allows. The smallest of those is
//! what the host can hold; the item that sets it is the one to raise first.
//! [`judge`] rules on one sysctl key, [`assess`] builds the items of each role from a
//! [`HostView`] (what was read), and this file renders a [`Report`] for people and, as
//! one JSON object, for scripts. The same code gives the server's start-up line and
//! the load generator's refusal before a run.

pub mod assess;
pub mod judge;

use std::fmt::Write as _;

use serde::Serialize;

pub use crate::host::conf::Scope;
pub use assess::{loadgen, one_host, server, HostView, LoadgenAsk, OneHostAsk, ServerAsk};

/// Which program's host is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Loadgen,
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
    /// How `wanted` is compared, for people: `>=`, `<=`, `=`, `covers`, `has`, or words
    /// for what is only shown.
    #[serde(skip)]
    pub op: &'static str,
    /// The most connections this item allows as it is (`None`: no bound).
    #[serde(skip)]
    pub holds: Option<u64>,
    /// What to do when it is short: one actionable sentence.
    #[serde(skip)]
    pub fix: String,
}

/// A whole check. Serialises to the one JSON object of `check --json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: u32,
    pub role: Role,
    pub asked: u64,
    pub can_hold: u64,
    pub ok: bool,
    pub first_to_raise: String,
    pub items: Vec<Item>,
}

impl Report {
    /// Sums up `items`: the host holds the smallest count any item allows.
    pub fn new(role: Role, asked: u64, items: Vec<Item>) -> Report {
        let can_hold = items
            .iter()
            .filter_map(|i| i.holds)
            .min()
            .unwrap_or(u64::MAX);
        let ok = can_hold >= asked;
        let first_to_raise = if ok {
            String::new()
        } else {
            items
                .iter()
                .filter(|i| i.judged && !i.ok)
                .min_by_key(|i| i.holds.unwrap_or(u64::MAX))
                .map(|i| format!("{}: {}", i.name, i.fix))
                .unwrap_or_default()
        };
        Report {
            schema: 1,
            role,
            asked,
            can_hold,
            ok,
            first_to_raise,
            items,
        }
    }

    /// Items that are judged and short, binding ones first.
    pub fn short(&self) -> Vec<&Item> {
        let mut v: Vec<&Item> = self.items.iter().filter(|i| i.judged && !i.ok).collect();
        v.sort_by_key(|i| i.holds.unwrap_or(u64::MAX));
        v
    }

    /// The one summary line: what the host holds and what to raise first.
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
        // Fixed settings that are short allow no count at all (holds 0); say what the
        // counted limits alone allow, so the 0 is not read as "nothing fits".
        let counted = self
            .items
            .iter()
            .filter_map(|i| i.holds)
            .filter(|&h| h > 0)
            .min();
        if self.ok {
            format!(
                "ok: this host can hold {holds} {what} as it is (asked {})",
                self.asked
            )
        } else if self.can_hold == 0 {
            format!(
                "SHORT: this host can hold 0 {what} as it is (asked {}): settings that do not \
                 scale with the count are short (its counted limits alone allow {}); raise \
                 first: {}",
                self.asked,
                counted.map_or("any number".to_string(), |c| c.to_string()),
                self.first_to_raise
            )
        } else {
            format!(
                "SHORT: this host can hold {holds} {what} as it is (asked {}); raise first: {}",
                self.asked, self.first_to_raise
            )
        }
    }

    /// The report for people: one line per item, the summary, then the other fixes.
    pub fn human(&self) -> String {
        let w = |f: fn(&Item) -> usize| self.items.iter().map(f).max().unwrap_or(0);
        let (nw, vw) = (w(|i| i.name.len()), w(|i| i.value.len()));
        let ww = w(|i| i.op.len() + 1 + i.wanted.len());
        let mut s = String::new();
        for i in &self.items {
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
        let _ = writeln!(s, "{}", self.summary());
        // The other fixes, once each (one file fixes several keys).
        let short = self.short();
        let mut seen: Vec<&str> = short.iter().take(1).map(|i| i.fix.as_str()).collect();
        for i in short.iter().skip(1) {
            if !seen.contains(&i.fix.as_str()) {
                let _ = writeln!(s, "  then {}: {}", i.name, i.fix);
                seen.push(&i.fix);
            }
        }
        s
    }

    /// The report as one line of JSON.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The server's start-up line: this host checked for the connection count
/// `sysctl/server.conf` is written for, as one line.
pub fn start_line(cores: &[usize]) -> String {
    let conf = crate::host::conf::Conf::server();
    let ask = ServerAsk {
        connections: conf.target.unwrap_or(1_000_000),
        instances: 1,
        cores: Some(cores.to_vec()),
    };
    let r = server(&ask, Some(&conf), &HostView::read(Some(&conf)));
    let short: Vec<String> = r
        .short()
        .iter()
        .map(|i| format!("{} {} (wanted {} {})", i.name, i.value, i.op, i.wanted))
        .collect();
    if short.is_empty() {
        format!("host check: {}", r.summary())
    } else {
        format!(
            "host check: {}; short: {}; details: redpacket-server check --connections N",
            r.summary(),
            short.join(", ")
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
            op: ">=",
            holds,
            fix: fix.into(),
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
        let h = r.human();
        assert!(h.contains("SHORT: this host can hold 20 connections as it is (asked 100); raise first: c: raise c"), "{h}");
        assert!(h.contains("  then a: raise a"), "{h}");
        let ok = Report::new(Role::Loadgen, 10, vec![item("b", true, Some(1000), "")]);
        assert!(ok.ok);
        assert_eq!(ok.first_to_raise, "");
        assert!(ok
            .summary()
            .starts_with("ok: this host can hold 1000 users"));
    }

    #[test]
    fn json_follows_the_schema() {
        let r = Report::new(Role::Loadgen, 100, vec![item("a", false, Some(5), "do")]);
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["role"], "loadgen");
        assert_eq!(v["asked"], 100);
        assert_eq!(v["can_hold"], 5);
        assert_eq!(v["ok"], false);
        assert_eq!(v["first_to_raise"], "a: do");
        let i = &v["items"][0];
        assert_eq!(i["scope"], "process");
        let mut keys: Vec<&str> = i.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["judged", "limits", "name", "ok", "scope", "value", "wanted"]
        );
    }
}
