//! The run's money, reconciled over every server process (each host's instances too)
//! and every load generator, from their final accounts.
//!
//! Each server's account says whether its own ledger balances (counted from what its
//! pools and packets held at the end). Across the fleet, the cents the load generators
//! saw won and grabbed must equal the cents every server together says were won and
//! grabbed, when these load generators drove all of these servers' users (as the fleet
//! and the demo do): a packet lost or counted twice anywhere shows here.

use super::load::Run;

/// Sums over the run's final accounts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MoneyCheck {
    /// Server processes with a final account, and those without one.
    pub accounts: usize,
    pub missing: Vec<String>,
    /// Every account's two ledgers balance.
    pub servers_balanced: bool,
    /// Server processes whose ledger does not balance.
    pub unbalanced: Vec<String>,
    pub server_won_cents: u64,
    pub server_grabbed_cents: u64,
    /// Load generators with money in their summary, and their sums.
    pub clients: usize,
    pub client_won_cents: u64,
    pub client_grabbed_cents: u64,
}

impl MoneyCheck {
    /// Clients and servers agree on won and grabbed cents (`None`: no client money).
    pub fn agree(&self) -> Option<bool> {
        (self.clients > 0).then_some(
            self.client_won_cents == self.server_won_cents
                && self.client_grabbed_cents == self.server_grabbed_cents,
        )
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
        if !self.missing.is_empty() {
            s.push_str(&format!(
                " (no final account from {})",
                self.missing.join(", ")
            ));
        }
        match self.agree() {
            Some(ok) => s.push_str(&format!(
                "; {} load generator(s) saw {} cents won and {} grabbed, the servers {} and {}: {}",
                self.clients,
                self.client_won_cents,
                self.client_grabbed_cents,
                self.server_won_cents,
                self.server_grabbed_cents,
                if ok { "they agree" } else { "they DIFFER" }
            )),
            None => s.push_str("; no load generator recorded money"),
        }
        s.push('.');
        s
    }
}

/// The run's money check; `None` when no server left a log or an account.
pub fn check(run: &Run) -> Option<MoneyCheck> {
    let mut m = MoneyCheck {
        servers_balanced: true,
        ..Default::default()
    };
    let mut any = false;
    for h in &run.hosts {
        for log in &h.servers {
            any = true;
            let label = log.label(&h.name);
            let Some(a) = &log.summary else {
                m.missing.push(label);
                continue;
            };
            m.accounts += 1;
            if !(a.shake_balanced && a.send_balanced) {
                m.servers_balanced = false;
                m.unbalanced.push(label);
            }
            m.server_won_cents += a.stats.shake.won_cents;
            m.server_grabbed_cents += a.stats.send.grabbed_cents;
        }
        if let Some(s) = h.summary.as_ref().filter(|s| !s.money.is_empty()) {
            m.clients += 1;
            m.client_won_cents += s.money.client_won_cents;
            m.client_grabbed_cents += s.money.client_grabbed_cents;
        }
    }
    if m.accounts == 0 {
        m.servers_balanced = false;
    }
    any.then_some(m)
}
