//! The run's money, reconciled over every server process (each host's instances too)
//! and every load generator, from their final accounts.
//!
//! Each server's account says whether its own ledger balances (counted from what its
//! pools and packets held at the end). Across the fleet, the cents the load generators
//! saw won and grabbed must equal the cents every server together says were won and
//! grabbed, when these load generators drove all of these servers' users (as the fleet
//! and the demo do): a packet lost or counted twice anywhere shows here.
//!
//! A fault mid-run takes a ledger with it, and then the sums cannot be compared: a
//! server killed before its final account (restarted or not) lost its money's record,
//! so the comparison is *not reconcilable*, neither a match nor a mismatch; a load
//! generator killed before its summary leaves the clients' total *incomplete*, and the
//! gap to what the servers paid is its share. The other ledgers are still checked.

use super::load::{Role, Run};
use super::numbers::when;

/// Sums over the run's final accounts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reconciliation {
    /// Final accounts read (an instance's earlier clean lives count one each), and the
    /// server processes without one.
    pub accounts: usize,
    pub missing: Vec<String>,
    /// Every account's two ledgers balance.
    pub servers_balanced: bool,
    /// Server processes whose ledger does not balance.
    pub unbalanced: Vec<String>,
    /// Server processes whose money cannot be reconciled, one sentence each that
    /// starts with the server's name (`HOST instance I: ...`).
    pub unreconciled: Vec<String>,
    /// Their names alone, for the verdict.
    pub unreconciled_names: Vec<String>,
    pub server_won_cents: u64,
    pub server_grabbed_cents: u64,
    /// Load generators with money in their summary, and their sums.
    pub clients: usize,
    pub client_won_cents: u64,
    pub client_grabbed_cents: u64,
    /// Load generators that stopped before their summary: the clients' total lacks them.
    pub clients_missing: Vec<String>,
}

/// Whether the clients' and the servers' money can be compared, and what it gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// No load generator recorded money.
    NoClients,
    Agree,
    Differ,
    /// A server's ledger is lost: neither a match nor a mismatch means anything.
    NotReconcilable,
    /// The servers' ledgers are whole but a load generator left no summary: the
    /// clients' total is short by that host's share.
    ClientsIncomplete,
}

impl Reconciliation {
    /// Clients against servers on won and grabbed cents.
    pub fn agreement(&self) -> Agreement {
        if self.clients == 0 && self.clients_missing.is_empty() {
            Agreement::NoClients
        } else if !self.unreconciled.is_empty() {
            Agreement::NotReconcilable
        } else if !self.clients_missing.is_empty() {
            Agreement::ClientsIncomplete
        } else if self.client_won_cents == self.server_won_cents
            && self.client_grabbed_cents == self.server_grabbed_cents
        {
            Agreement::Agree
        } else {
            Agreement::Differ
        }
    }

    /// Clients and servers agree on won and grabbed cents (`None`: nothing to compare,
    /// no client money or a ledger or summary missing).
    pub fn agree(&self) -> Option<bool> {
        match self.agreement() {
            Agreement::Agree => Some(true),
            Agreement::Differ => Some(false),
            _ => None,
        }
    }

    /// What the verdict must say beside passed or failed: money that cannot be
    /// reconciled, a clients' total that is incomplete.
    pub fn gaps(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.unreconciled_names.is_empty() {
            v.push(format!(
                "money not reconcilable: {} lost a ledger (killed mid-run)",
                self.unreconciled_names.join(", ")
            ));
        }
        if !self.clients_missing.is_empty() {
            v.push(format!(
                "clients' money incomplete: no summary.json from {} (load generator stopped early)",
                self.clients_missing.join(", ")
            ));
        }
        v
    }

    pub fn sentence(&self) -> String {
        if self.accounts == 0 {
            return format!(
                "Money: no server left its final account (server-summary.json) ({}).",
                self.missing.join(", ")
            );
        }
        let mut s = format!(
            "Money over {} server process(es): {}",
            self.accounts,
            if self.servers_balanced {
                "every ledger balanced".to_string()
            } else {
                format!("NOT BALANCED on {}", self.unbalanced.join(", "))
            }
        );
        if !self.unreconciled_names.is_empty() {
            s.push_str(&format!(
                " (cannot be reconciled: {})",
                self.unreconciled_names.join(", ")
            ));
        }
        let clients = format!(
            "{} load generator(s) saw {} cents won and {} grabbed, the servers {} and {}",
            self.clients,
            self.client_won_cents,
            self.client_grabbed_cents,
            self.server_won_cents,
            self.server_grabbed_cents,
        );
        match self.agreement() {
            Agreement::NoClients => s.push_str("; no load generator recorded money"),
            Agreement::Agree => s.push_str(&format!("; {clients}: they agree")),
            Agreement::Differ => s.push_str(&format!("; {clients}: they DIFFER")),
            Agreement::NotReconcilable => s.push_str(&format!(
                "; clients against servers: not reconcilable, a server's ledger is lost \
                 ({}): {clients}",
                self.unreconciled_names.join(", ")
            )),
            Agreement::ClientsIncomplete => {
                let gap = |srv: u64, cli: u64| srv as i128 - cli as i128;
                s.push_str(&format!(
                    "; the clients' total is incomplete (no summary.json from {}): the \
                     remaining {clients}; the gap of {} cents won and {} grabbed is {}'s",
                    self.clients_missing.join(", "),
                    gap(self.server_won_cents, self.client_won_cents),
                    gap(self.server_grabbed_cents, self.client_grabbed_cents),
                    self.clients_missing.join(" and "),
                ))
            }
        }
        s.push('.');
        s
    }
}

/// The run's money reconciled over its final accounts; `None` when no server left a log
/// or an account.
pub fn reconcile(run: &Run) -> Option<Reconciliation> {
    let mut m = Reconciliation {
        servers_balanced: true,
        ..Default::default()
    };
    let started = run.meta.started;
    let mut any = false;
    for h in &run.hosts {
        for log in &h.servers {
            any = true;
            let label = log.label(&h.name);
            let name = log.name(&h.name);
            let lost = log.lost_lives();
            if let Some(first) = lost.first() {
                m.unreconciled.push(format!(
                    "{name}: restarted after being killed at {} ({} time(s)): the ledger of \
                     the earlier life is lost; its money cannot be reconciled",
                    when(first.last_seen, started),
                    lost.len()
                ));
                m.unreconciled_names.push(name.clone());
            }
            for (life, a) in &log.earlier {
                m.accounts += 1;
                if !(a.shake_balanced && a.send_balanced) {
                    m.servers_balanced = false;
                    m.unbalanced.push(format!("{label} (life {life})"));
                }
                m.server_won_cents = m.server_won_cents.saturating_add(a.stats.shake.won_cents);
                m.server_grabbed_cents = m
                    .server_grabbed_cents
                    .saturating_add(a.stats.send.grabbed_cents);
            }
            let Some(a) = &log.summary else {
                if lost.is_empty() {
                    m.unreconciled.push(format!(
                        "{name}: no final account (server-summary.json is missing; its lines \
                         run until {}): killed and not restarted, or not collected; its money \
                         cannot be reconciled",
                        when(log.last_t().unwrap_or(0.0), started)
                    ));
                    m.unreconciled_names.push(name);
                }
                m.missing.push(label);
                continue;
            };
            m.accounts += 1;
            if !(a.shake_balanced && a.send_balanced) {
                m.servers_balanced = false;
                m.unbalanced.push(label);
            }
            m.server_won_cents = m.server_won_cents.saturating_add(a.stats.shake.won_cents);
            m.server_grabbed_cents = m
                .server_grabbed_cents
                .saturating_add(a.stats.send.grabbed_cents);
        }
        match h.summary.as_ref() {
            Some(s) if !s.money.is_empty() => {
                m.clients += 1;
                m.client_won_cents = m.client_won_cents.saturating_add(s.money.client_won_cents);
                m.client_grabbed_cents = m
                    .client_grabbed_cents
                    .saturating_add(s.money.client_grabbed_cents);
            }
            Some(_) => {}
            None if h.role() == Role::Loadgen => m.clients_missing.push(h.name.clone()),
            None => {}
        }
    }
    if m.accounts == 0 {
        m.servers_balanced = false;
    }
    any.then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{HostData, ServerLog};
    use redpacket_formats::{LoadgenSummary, ServerSummary};

    fn account(won: u64) -> ServerSummary {
        let mut a = ServerSummary {
            shake_balanced: true,
            send_balanced: true,
            ..Default::default()
        };
        a.stats.shake.won_cents = won;
        a
    }

    fn run(hosts: Vec<HostData>) -> Run {
        Run {
            dir: Default::default(),
            id: "t".into(),
            meta: Default::default(),
            has_meta: false,
            hosts,
            problems: Vec::new(),
            refused: 0,
            implausible: Vec::new(),
        }
    }

    fn client(won: u64) -> HostData {
        let mut s = LoadgenSummary::default();
        s.money.client_won_cents = won;
        s.money.note = "checked".into();
        HostData {
            name: "client1".into(),
            summary: Some(s),
            ..Default::default()
        }
    }

    #[test]
    fn an_earlier_clean_life_is_counted_and_reconciles() {
        let mut last = account(30);
        last.life = 2;
        let server = HostData {
            name: "server1".into(),
            servers: vec![ServerLog {
                instance: Some(1),
                summary: Some(last),
                earlier: vec![(1, account(70))],
                ..Default::default()
            }],
            ..Default::default()
        };
        let m = reconcile(&run(vec![server, client(100)])).unwrap();
        assert_eq!((m.accounts, m.server_won_cents), (2, 100));
        assert_eq!(m.agreement(), Agreement::Agree);
        assert!(m.gaps().is_empty());
    }

    #[test]
    fn a_missing_account_makes_the_comparison_not_reconcilable() {
        let server = HostData {
            name: "server1".into(),
            servers: vec![
                ServerLog {
                    instance: Some(1),
                    summary: Some(account(60)),
                    ..Default::default()
                },
                ServerLog {
                    instance: Some(2),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        // The clients saw exactly what the one account says: still not a match.
        let m = reconcile(&run(vec![server, client(60)])).unwrap();
        assert!(m.servers_balanced);
        assert_eq!(m.agreement(), Agreement::NotReconcilable);
        assert_eq!(m.unreconciled_names, ["server1 instance 2"]);
        assert!(
            m.sentence().contains("not reconcilable"),
            "{}",
            m.sentence()
        );
    }
}
