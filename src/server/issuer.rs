//! Campaigns: shake packets issued at a fixed rate, user-to-user packets sent at a rate.
//!
//! Runs on the control thread, never on a worker; the control plane starts, lists and
//! cancels campaigns through its [`redpacket_control::Plane`]. Each tick it creates the
//! packets the campaigns owe, then hands shake packets to workers in proportion to the
//! shake requests each saw (so a request's chance does not depend on its core), each
//! worker up to about two ticks of its demand (a server of one worker: all of them, as
//! they are made). What no worker needs yet stays here, in the central pool, and still
//! counts as outstanding. The overload budget (`--max-qps`) is divided among workers by
//! demand the same way. A send campaign first reserves each packet's place on a worker
//! ([`super::SendSlots`]), then counts it as issued and asks that worker to make it: at
//! the cap it waits, it never overshoots or drops.

use super::{Held, Msg, ServerState, ShakePacket};
use crate::apportion::apportion;
use crate::config::CentsRange;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redpacket_control::{Campaign, CampaignKind, CampaignOrder, NotStarted};
use redpacket_formats::server::Counters;
use redpacket_protocol::MAX_RECIPIENTS;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often campaigns issue and packets are handed out, at the most.
pub const ISSUE_TICK: std::time::Duration = std::time::Duration::from_millis(10);
/// The longest the issuer waits between ticks while a campaign runs or packets wait:
/// a campaign slow enough to owe its next packet later than [`ISSUE_TICK`] is ticked
/// when that packet falls due, not a hundred times a second for nothing (a server of
/// fifty instances splits its campaigns fifty ways).
pub const MAX_ISSUE_TICK: std::time::Duration = std::time::Duration::from_millis(100);
/// The same for a server of one worker, which has no split to pace: every packet goes
/// to that worker as it is made, so the issuer wakes only when a campaign owes one (or
/// once a second). A one-worker instance is what a host runs many of where a process
/// may hold few sockets, and each wake-up of each instance costs a context switch.
pub const LONE_WORKER_MAX_TICK: std::time::Duration = std::time::Duration::from_secs(1);
/// A worker is granted at least this many packets of headroom even with no demand yet.
const MIN_HEADROOM: u64 = 4;

/// A running campaign: what `/campaigns` shows of it, and the packets it may issue but
/// has not yet (at most one second's worth banks up).
struct Running {
    shown: Campaign,
    credit: f64,
}

pub struct Issuer {
    state: Arc<ServerState>,
    campaigns: Vec<Running>,
    next_campaign: u64,
    central: VecDeque<ShakePacket>,
    next_packet: u32,
    next_owner: usize,
    /// Cumulative shake requests per worker at the last tick, and smoothed demand.
    seen: Vec<u64>,
    demand: Vec<f64>,
    rng: SmallRng,
    scratch: (Vec<u64>, Vec<u64>, Vec<u64>),
    /// Send-campaign packets reserved per worker this tick.
    owed: Vec<u64>,
    /// Wakes the ticker, asleep while there is nothing to issue or hand out.
    wake: Arc<tokio::sync::Notify>,
}

impl Issuer {
    pub fn new(state: Arc<ServerState>) -> Issuer {
        let n = state.workers.len();
        Issuer {
            state,
            campaigns: Vec::new(),
            next_campaign: 1,
            central: VecDeque::new(),
            next_packet: 1,
            next_owner: 0,
            seen: vec![0; n],
            demand: vec![0.0; n],
            rng: SmallRng::from_os_rng(),
            scratch: Default::default(),
            owed: vec![0; n],
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Whether a tick would do nothing: no campaign running and no packet waiting to
    /// be handed to a worker. The ticker then sleeps until a campaign starts.
    fn quiet(&self) -> bool {
        self.campaigns.is_empty() && self.central.is_empty()
    }

    fn counters(&self) -> &Counters {
        &self.state.control_counters
    }

    /// Starts a campaign: `/yaohongbao`, `sum` shake packets at `rate` per second, or
    /// `/fahongbao`, `sum` user-to-user packets at `rate` per second, each for
    /// [`MAX_RECIPIENTS`] distinct random users in `min..=max`. Refused when the range
    /// holds too few users, or when `--max-campaigns` are already running.
    pub fn start(&mut self, order: CampaignOrder) -> Result<Campaign, NotStarted> {
        let (kind, rate, total, users) = match order {
            CampaignOrder::Shake { rate, sum } => (CampaignKind::Shake, rate, sum, None),
            CampaignOrder::Send {
                rate,
                sum,
                min,
                max,
            } => {
                let need = MAX_RECIPIENTS as u64;
                if min > max || u64::from(max) - u64::from(min) + 1 < need {
                    return Err(NotStarted::TooFewUsers { need, min, max });
                }
                (CampaignKind::Send, rate, sum, Some((min, max)))
            }
        };
        let max = self.state.cfg.max_campaigns;
        if self.campaigns.len() >= max {
            return Err(NotStarted::TooMany { max });
        }
        let shown = Campaign {
            id: self.next_campaign,
            kind,
            rate,
            total,
            issued: 0,
            remaining: total,
            users,
        };
        self.next_campaign += 1;
        self.campaigns.push(Running {
            shown: shown.clone(),
            credit: 0.0,
        });
        self.wake.notify_one();
        Ok(shown)
    }

    /// Stops campaign `id` and returns its last state; `None` if no such campaign is
    /// running. Packets it issued stay in play (to be won, grabbed or refunded, as
    /// money); the packets it had not issued were never money and are simply not made.
    pub fn cancel(&mut self, id: u64) -> Option<Campaign> {
        let at = self.campaigns.iter().position(|r| r.shown.id == id)?;
        Some(self.campaigns.remove(at).shown)
    }

    /// Whether the server has a single worker: no split among workers to pace.
    fn lone_worker(&self) -> bool {
        self.state.workers.len() == 1
    }

    /// How long until the next tick can do something: the earliest time a campaign's
    /// credit reaches a whole packet, within [`ISSUE_TICK`]..[`MAX_ISSUE_TICK`]
    /// (packets waiting for demand are looked at again within the longest), or
    /// [`LONE_WORKER_MAX_TICK`] with a single worker (which waits for no demand).
    fn next_tick(&self) -> std::time::Duration {
        let longest = if self.lone_worker() {
            LONE_WORKER_MAX_TICK
        } else {
            MAX_ISSUE_TICK
        };
        let due = self
            .campaigns
            .iter()
            .filter(|r| r.shown.rate > 0.0)
            .map(|r| (1.0 - r.credit).max(0.0) / r.shown.rate)
            .fold(longest.as_secs_f64(), f64::min);
        std::time::Duration::from_secs_f64(due).clamp(ISSUE_TICK, longest)
    }
    /// The campaigns still running, oldest first.
    pub fn campaigns(&self) -> Vec<Campaign> {
        self.campaigns.iter().map(|r| r.shown.clone()).collect()
    }

    /// Creates what the campaigns owe for `dt` seconds and hands packets out.
    pub fn tick(&mut self, dt: f64) {
        let amounts = self.state.cfg.shake_amount;
        let send_amounts = self.state.cfg.send_amount;
        let won: u64 = self
            .state
            .workers
            .iter()
            .map(|w| w.counters.won.load(Relaxed))
            .sum();
        let issued = self.counters().issued.load(Relaxed);
        let mut shake_room = self
            .state
            .cfg
            .max_outstanding_shakes
            .saturating_sub(issued.saturating_sub(won));
        let mut campaigns = std::mem::take(&mut self.campaigns);
        for Running { shown: c, credit } in &mut campaigns {
            // At most one second of credit banks up, so a stalled tick cannot burst.
            *credit = (*credit + c.rate * dt).min(c.rate.max(1.0));
            let want = (*credit as u64).min(c.remaining);
            // Only what fits is issued and counted; the rest waits for room.
            let n = match c.users {
                None => {
                    let n = want.min(shake_room);
                    shake_room -= n;
                    self.issue_shake(n, amounts);
                    n
                }
                Some((min, max)) => {
                    let n = self.reserve_sends(want);
                    self.issue_send(min, max, send_amounts);
                    n
                }
            };
            *credit -= n as f64;
            c.remaining -= n;
            c.issued += n;
        }
        campaigns.retain(|r| r.shown.remaining > 0);
        self.campaigns = campaigns;
        self.distribute();
    }

    fn issue_shake(&mut self, n: u64, amounts: CentsRange) {
        let mut cents = 0;
        for _ in 0..n {
            let amount = self.rng.random_range(amounts.min..=amounts.max);
            cents += u64::from(amount);
            let id = self.next_packet;
            self.next_packet = self.next_packet.wrapping_add(1).max(1);
            self.central.push_back(ShakePacket { id, amount });
        }
        Counters::add(&self.counters().issued, n);
        Counters::add(&self.counters().issued_cents, cents);
    }

    /// Reserves room for up to `want` packets, spread evenly over the workers that have
    /// some (starting where the last tick stopped); fills `owed`, returns the total.
    fn reserve_sends(&mut self, want: u64) -> u64 {
        let workers = self.state.workers.len();
        self.owed.iter_mut().for_each(|o| *o = 0);
        let mut left = want;
        // First an even share each, then whatever the others could not take.
        for pass in 0..2 {
            for k in 0..workers {
                if left == 0 {
                    break;
                }
                let i = (self.next_owner + k) % workers;
                let ask = if pass == 0 {
                    left.div_ceil((workers - k) as u64)
                } else {
                    left
                };
                let got = self.state.workers[i].send_slots.reserve(ask);
                self.owed[i] += got;
                left -= got;
            }
        }
        self.next_owner = (self.next_owner + 1) % workers;
        want - left
    }

    /// Sends each worker the packets reserved for it in `owed`.
    fn issue_send(&mut self, min: u32, max: u32, amounts: CentsRange) {
        for owner in 0..self.owed.len() {
            for _ in 0..self.owed[owner] {
                self.send_one(owner, min, max, amounts);
            }
        }
    }

    /// One campaign packet, to three distinct random users, for the worker `owner`.
    fn send_one(&mut self, owner: usize, min: u32, max: u32, amounts: CentsRange) {
        let mut recipients = [0u32; MAX_RECIPIENTS];
        let mut k = 0;
        while k < MAX_RECIPIENTS {
            let u = self.rng.random_range(min..=max);
            if !recipients[..k].contains(&u) {
                recipients[k] = u;
                k += 1;
            }
        }
        let amount = self.rng.random_range(amounts.min..=amounts.max);
        if self.state.workers[owner]
            .inbox
            .send(Msg::CreateSend { amount, recipients })
            .is_err()
        {
            // That worker has stopped (shutdown): the promise is void, no money made.
            self.state.workers[owner].send_slots.release(1);
        }
    }

    /// Demand-proportional grants of shake packets and of the overload budget.
    fn distribute(&mut self) {
        let lone = self.lone_worker();
        let workers = &self.state.workers;
        let (weights, caps, parts) = &mut self.scratch;
        weights.clear();
        caps.clear();
        for (i, w) in workers.iter().enumerate() {
            let total = w.counters.shake.load(Relaxed);
            let fresh = total.saturating_sub(self.seen[i]) as f64;
            self.seen[i] = total;
            // Smoothed over a few ticks so one quiet tick does not starve a worker.
            self.demand[i] = 0.5 * self.demand[i] + 0.5 * fresh;
            let want = ((self.demand[i] * 2.0).ceil() as u64).max(MIN_HEADROOM);
            weights.push((self.demand[i] * 1000.0) as u64);
            caps.push(want.saturating_sub(w.held.load(Relaxed)));
        }
        if lone {
            // No other worker could use a packet more: it gets all of them now, and
            // no tick has to come back for what would otherwise wait here for demand.
            caps[0] = u64::MAX;
        }
        // The overload budget: 90% by demand, 10% evenly so an idle worker can start.
        let max_qps = self.state.cfg.max_qps;
        let even = max_qps / workers.len() as u64 / 10;
        let uncapped = vec![u64::MAX; workers.len()];
        let offset = self.rng.random();
        apportion(
            max_qps - even * workers.len() as u64,
            weights,
            &uncapped,
            offset,
            parts,
        );
        for (w, &p) in workers.iter().zip(parts.iter()) {
            w.budget.store(p + even, Relaxed);
        }
        if self.central.is_empty() {
            return;
        }
        let offset = self.rng.random();
        apportion(self.central.len() as u64, weights, caps, offset, parts);
        for (i, &n) in parts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let grant: Vec<ShakePacket> = self.central.drain(..n as usize).collect();
            if let Err(e) = workers[i].inbox.send(Msg::Grant(grant)) {
                // That worker has stopped: the packets stay here, still counted.
                if let Msg::Grant(back) = e.0 {
                    self.central.extend(back);
                }
            }
        }
    }

    /// Packets still in the central pool.
    pub fn held(&self) -> Held {
        Held {
            shake: self.central.len() as u64,
            shake_cents: self.central.iter().map(|p| u64::from(p.amount)).sum(),
            send: 0,
            send_cents: 0,
        }
    }
}

/// Ticks the issuer until aborted: every [`ISSUE_TICK`] while a campaign owes packets
/// that often, else when its next packet falls due (at most [`MAX_ISSUE_TICK`] apart, or
/// [`LONE_WORKER_MAX_TICK`] with one worker);
/// it sleeps while it has nothing to issue or hand out (no campaign, an empty pool)
/// until a campaign starts (which also cuts a long wait short); while the server shuts
/// down it issues nothing.
pub async fn issue_every_tick(issuer: Arc<Mutex<Issuer>>, shutdown: CancellationToken) {
    let wake = lock(&issuer).wake.clone();
    let mut last = Instant::now();
    let mut next = ISSUE_TICK;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = wake.notified() => {}
        }
        if shutdown.is_cancelled() {
            // Shutting down: campaigns stop issuing; what was issued stays counted.
            next = ISSUE_TICK;
            continue;
        }
        let now = Instant::now();
        let quiet = {
            let mut i = lock(&issuer);
            i.tick(now.duration_since(last).as_secs_f64());
            next = i.next_tick();
            i.quiet()
        };
        last = now;
        if quiet {
            // A campaign's start wakes it (a permit is kept if it starts before this
            // waits); its credit begins at 0, so the time asleep owes nothing.
            wake.notified().await;
            last = Instant::now();
            next = ISSUE_TICK;
        }
    }
}

/// The issuer, locked. Only the control thread takes the lock, never across an await; a
/// poisoned lock can only follow a panic in the issuer, whose state is still consistent
/// counts.
pub fn lock(issuer: &Mutex<Issuer>) -> std::sync::MutexGuard<'_, Issuer> {
    issuer.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::server::inbox::Mailbox;

    fn issuer(workers: usize, max_campaigns: usize) -> (Issuer, Vec<Mailbox>) {
        let mut cfg = Config::for_tests();
        cfg.cores = vec![0; workers];
        cfg.max_campaigns = max_campaigns;
        let (state, inboxes) = ServerState::new(cfg, 100).unwrap();
        (Issuer::new(state), inboxes)
    }

    #[test]
    fn campaigns_are_numbered_capped_and_cancelled() {
        let (mut iss, _inboxes) = issuer(1, 2);
        let shake = CampaignOrder::Shake { rate: 5.0, sum: 7 };
        let a = iss.start(shake).unwrap();
        assert_eq!(
            (a.id, a.kind, a.total, a.remaining, a.users),
            (1, CampaignKind::Shake, 7, 7, None)
        );
        let send = CampaignOrder::Send {
            rate: 5.0,
            sum: 7,
            min: 10,
            max: 12,
        };
        let b = iss.start(send).unwrap();
        assert_eq!((b.id, b.users), (2, Some((10, 12))));
        assert_eq!(iss.start(shake), Err(NotStarted::TooMany { max: 2 }));
        assert_eq!(iss.cancel(1).map(|c| c.id), Some(1));
        assert_eq!(iss.cancel(1), None, "already gone");
        assert_eq!(iss.campaigns(), vec![b]);
        assert_eq!(iss.start(shake).unwrap().id, 3, "ids are never reused");
    }

    #[test]
    fn a_send_campaign_needs_room_for_its_recipients() {
        let (mut iss, _inboxes) = issuer(1, 10);
        let order = |min, max| CampaignOrder::Send {
            rate: 1.0,
            sum: 1,
            min,
            max,
        };
        let need = MAX_RECIPIENTS as u64;
        assert_eq!(
            iss.start(order(5, 6)),
            Err(NotStarted::TooFewUsers {
                need,
                min: 5,
                max: 6
            })
        );
        assert_eq!(
            iss.start(order(6, 5)),
            Err(NotStarted::TooFewUsers {
                need,
                min: 6,
                max: 5
            })
        );
        assert!(iss.start(order(5, 7)).is_ok());
        assert_eq!(iss.campaigns().len(), 1, "a refused order is not counted");
    }

    /// A shake campaign issues at its rate, counts what it issues, and every packet is
    /// either granted to a worker or still held here.
    #[test]
    fn a_shake_campaign_issues_at_its_rate_and_every_packet_is_accounted() {
        let (mut iss, mut inboxes) = issuer(2, 10);
        iss.start(CampaignOrder::Shake {
            rate: 100.0,
            sum: 10,
        })
        .unwrap();
        iss.tick(0.05);
        assert_eq!(iss.counters().issued.load(Relaxed), 5, "0.05 s at 100/s");
        assert_eq!(iss.campaigns()[0].remaining, 5);
        iss.tick(1.0);
        assert_eq!(iss.counters().issued.load(Relaxed), 10);
        assert!(iss.campaigns().is_empty(), "a finished campaign is gone");
        let (mut granted, mut cents) = (iss.held().shake, iss.held().shake_cents);
        for inbox in &mut inboxes {
            let mut batch = Vec::new();
            inbox.take(&mut batch, usize::MAX);
            for m in batch {
                if let Msg::Grant(p) = m {
                    granted += p.len() as u64;
                    cents += p.iter().map(|p| u64::from(p.amount)).sum::<u64>();
                }
            }
        }
        assert_eq!(granted, 10);
        assert_eq!(cents, iss.counters().issued_cents.load(Relaxed));
    }

    fn granted(inboxes: &mut [Mailbox]) -> Vec<u64> {
        let mut n = vec![0; inboxes.len()];
        for (i, inbox) in inboxes.iter_mut().enumerate() {
            let mut batch = Vec::new();
            inbox.take(&mut batch, usize::MAX);
            for m in batch {
                if let Msg::Grant(p) = m {
                    n[i] += p.len() as u64;
                }
            }
        }
        n
    }

    /// With one worker there is no split to pace: every packet goes to it as it is
    /// made, whatever its demand, and a slow campaign is ticked when its next packet
    /// falls due, not every [`MAX_ISSUE_TICK`]. With two, packets beyond each worker's
    /// headroom wait here for demand, looked at again within [`MAX_ISSUE_TICK`].
    #[test]
    fn a_lone_worker_takes_every_packet_and_is_ticked_only_when_one_is_due() {
        let order = |rate| CampaignOrder::Shake { rate, sum: 100 };
        let (mut lone, mut inboxes) = issuer(1, 10);
        lone.start(order(10.0)).unwrap();
        lone.tick(1.0);
        assert_eq!(
            granted(&mut inboxes),
            vec![10],
            "no demand yet, all handed out"
        );
        assert_eq!(lone.held().shake, 0);
        let (mut two, mut inboxes) = issuer(2, 10);
        two.start(order(10.0)).unwrap();
        two.tick(1.0);
        assert_eq!(
            granted(&mut inboxes),
            vec![MIN_HEADROOM, MIN_HEADROOM],
            "each worker's headroom, the rest waits"
        );
        assert_eq!(two.held().shake, 10 - 2 * MIN_HEADROOM);

        // The next packet of a campaign of 2/s is due in half a second.
        let (mut lone, _inboxes) = issuer(1, 10);
        lone.start(order(2.0)).unwrap();
        assert_eq!(lone.next_tick(), std::time::Duration::from_millis(500));
        let (mut two, _inboxes) = issuer(2, 10);
        two.start(order(2.0)).unwrap();
        assert_eq!(two.next_tick(), MAX_ISSUE_TICK);
        // Slower than one a second: a lone worker's issuer still looks once a second.
        let (mut lone, _inboxes) = issuer(1, 10);
        lone.start(order(0.25)).unwrap();
        assert_eq!(lone.next_tick(), LONE_WORKER_MAX_TICK);
    }
}
