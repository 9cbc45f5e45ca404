//! The answers: what a worker does with each request frame (login, shake, grab, send),
//! and the packets it makes for user-to-user sends.
//!
//! The last step of the request path: socket ([`redpacket_sys::socket`]) -> frame
//! ([`redpacket_protocol`]) -> SET ([`super::set`]) -> answer (here). [`Requests`] is the
//! part of a worker's state the answers need; the SET hands it each decoded frame
//! through [`Answer`]. Nothing here touches a socket: an answer is a returned frame, and
//! what goes to another connection or worker goes as a message.

use super::directory::Directory;
use super::sends::{Grab, Sends};
use super::set::{Answer, SetShakes, Slot};
use super::{ConnKey, Loc, Msg, Note, ServerState, ShakePacket, WorkerState};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use redpacket_formats::server::{CloseReason, Counters};
use redpacket_protocol::{result, Frame, MAX_RECIPIENTS};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Grabs this worker may have waiting on other workers; past it a grab is answered 0.
const MAX_REMOTE_GRABS: usize = 65_536;
/// The overload budget may bank this much time's worth of answers (a burst allowance).
pub const BUDGET_BURST: f64 = 0.1;

/// A worker's request state: its shake pool and overload budget, the user-to-user
/// packets it owns, and the way to its peers.
pub struct Requests {
    pub index: usize,
    pub state: Arc<ServerState>,
    /// Shake packets granted to this worker and not yet handed to a SET.
    pub pool: VecDeque<ShakePacket>,
    /// Shake answers this worker may still give before shedding (refilled each tick).
    pub tokens: f64,
    pub sends: Sends,
    pub rng: SmallRng,
    /// Unix seconds, refreshed each tick: the time in every frame we send.
    pub now_unix: u64,
    /// Grabs waiting on other workers.
    pub remote_grabs: usize,
    send_rate: SendRate,
    epoch: Instant,
}

impl Requests {
    pub fn new(index: usize, state: Arc<ServerState>, epoch: Instant) -> Requests {
        let n = state.workers.len();
        let cfg = &state.cfg;
        // Start with a full burst allowance, so the first requests are not shed.
        let tokens = state.workers[index].budget.load(Relaxed) as f64 * BUDGET_BURST;
        Requests {
            index,
            pool: VecDeque::new(),
            tokens,
            sends: Sends::new(index, n, cfg.send_ttl),
            rng: SmallRng::from_os_rng(),
            now_unix: redpacket_protocol::unix_now(),
            remote_grabs: 0,
            send_rate: SendRate::new(cfg.send_rate),
            epoch,
            state,
        }
    }

    pub fn me(&self) -> &WorkerState {
        &self.state.workers[self.index]
    }

    pub fn counters(&self) -> &Counters {
        &self.me().counters
    }

    pub fn workers(&self) -> usize {
        self.state.workers.len()
    }

    /// Sends a message to a worker; false if that worker has stopped.
    pub fn post(&self, worker: usize, msg: Msg) -> bool {
        self.state.workers[worker].inbox.send(msg).is_ok()
    }

    pub fn here(&self, conn: ConnKey) -> Loc {
        Loc {
            worker: self.index as u16,
            conn,
        }
    }

    /// Microseconds since the worker's epoch, wrapping: the send rate's clock.
    fn now_us(&self) -> u32 {
        self.epoch.elapsed().as_micros() as u32
    }

    fn shake(&mut self, shakes: &mut SetShakes, user: u32) -> Frame {
        let c = &self.state.workers[self.index].counters;
        Counters::inc(&c.shake);
        let answer = |result, p: ShakePacket| Frame::ShakeResponse {
            user,
            result,
            packet: p.id,
            amount: p.amount,
        };
        let nothing = ShakePacket { id: 0, amount: 0 };
        shakes.demand += 1;
        if self.tokens < 1.0 {
            Counters::inc(&c.overloaded);
            return answer(result::OVERLOADED, nothing);
        }
        self.tokens -= 1.0;
        match shakes.pool.pop_front().or_else(|| self.pool.pop_front()) {
            Some(p) => {
                Counters::inc(&c.won);
                Counters::add(&c.won_cents, u64::from(p.amount));
                answer(result::GOT, p)
            }
            None => {
                Counters::inc(&c.none);
                answer(result::NONE, nothing)
            }
        }
    }

    fn grab(&mut self, key: ConnKey, user: u32, packet: u32) -> Option<Frame> {
        Counters::inc(&self.counters().grab);
        let owner = Sends::owner(packet, self.workers());
        if owner == self.index {
            let amount = self.grab_local(user, packet);
            return Some(Frame::GrabResponse { packet, amount });
        }
        if self.remote_grabs < MAX_REMOTE_GRABS {
            let reply = self.here(key);
            if self.post(
                owner,
                Msg::Grab {
                    user,
                    packet,
                    reply,
                },
            ) {
                self.remote_grabs += 1;
                return None;
            }
        }
        // Too many grabs in flight, or the owner has stopped: an answer now, of 0.
        Counters::inc(&self.counters().grab_denied);
        Some(Frame::GrabResponse { packet, amount: 0 })
    }

    /// A grab of a packet this worker owns, from a connection here or on another worker.
    pub fn grab_local(&mut self, user: u32, packet: u32) -> u32 {
        let c = &self.state.workers[self.index].counters;
        match self.sends.grab(packet, user) {
            Grab::Share { cents, last } => {
                if last {
                    self.state.workers[self.index].send_slots.release(1);
                }
                Counters::inc(&c.grabbed);
                Counters::add(&c.grabbed_cents, u64::from(cents));
                cents
            }
            Grab::Denied => {
                Counters::inc(&c.grab_denied);
                0
            }
        }
    }

    /// A send from a logged-in user (frame 0x0007): checked, split, stored here, and
    /// announced to each recipient through their home worker. In order: the
    /// connection's rate, the frame itself, the sender's own outstanding packets, and
    /// only then the worker's share of the server-wide cap, so a user who abuses hits a
    /// limit of their own long before the one everybody shares.
    fn client_send(
        &mut self,
        conn: &mut Slot,
        sender: u32,
        amount: u32,
        count: u32,
        users: [u32; MAX_RECIPIENTS],
    ) -> Result<u32, u32> {
        if !self.send_rate.allow(&mut conn.send_tat, self.now_us()) {
            return Err(result::SEND_RATE_LIMITED);
        }
        let k = count as usize;
        if k == 0 || k > MAX_RECIPIENTS {
            return Err(result::SEND_BAD_RECIPIENTS);
        }
        let named = &users[..k];
        let repeated = (1..k).any(|i| named[..i].contains(&named[i]));
        if repeated || named.contains(&sender) {
            return Err(result::SEND_BAD_RECIPIENTS);
        }
        if (amount as usize) < k {
            return Err(result::SEND_BAD_AMOUNT);
        }
        let per_user = self.state.cfg.max_sends_per_user;
        if per_user > 0 && self.sends.sent_by(sender) >= per_user {
            return Err(result::SEND_USER_LIMIT);
        }
        if self.me().send_slots.reserve(1) == 0 {
            return Err(result::SEND_BUSY);
        }
        self.create_send(sender, amount, users, k)
            .ok_or(result::SEND_BAD_AMOUNT)
    }

    /// Makes a packet in a slot already reserved (by the caller or the issuer); a
    /// packet that cannot be split gives its slot back.
    pub fn create_send(
        &mut self,
        sender: u32,
        amount: u32,
        recipients: [u32; MAX_RECIPIENTS],
        k: usize,
    ) -> Option<u32> {
        let Some(shares) = crate::split::split(amount, k, &mut self.rng) else {
            self.me().send_slots.release(1);
            return None;
        };
        let now = Instant::now();
        let id = self.sends.create(sender, recipients, k as u8, shares, now);
        let c = self.counters();
        Counters::inc(&c.created);
        Counters::add(&c.created_cents, u64::from(amount));
        let mut users = [0; MAX_RECIPIENTS];
        users[..k].copy_from_slice(&recipients[..k]);
        let note = Note {
            packet: id,
            amount,
            shares: k as u8,
            users,
            expires: self.now_unix + self.state.cfg.send_ttl.as_secs(),
        };
        for &user in &recipients[..k] {
            let home = Directory::home(user, self.workers());
            self.post(home, Msg::Notify { user, note });
        }
        Some(id)
    }
}

impl Answer for Requests {
    fn answer(
        &mut self,
        key: ConnKey,
        conn: &mut Slot,
        shakes: &mut SetShakes,
        frame: Frame,
    ) -> Result<Option<Frame>, CloseReason> {
        let user = match (conn.user, frame) {
            (None, Frame::LoginRequest { user }) => {
                conn.user = Some(user);
                // The send rate's bucket starts full.
                conn.send_tat = self.now_us();
                let c = self.counters();
                Counters::inc(&c.login);
                Counters::inc(&c.logins);
                let home = Directory::home(user, self.workers());
                self.post(
                    home,
                    Msg::Online {
                        user,
                        at: self.here(key),
                    },
                );
                return Ok(Some(Frame::LoginResponse {
                    user,
                    result: result::LOGIN_OK,
                }));
            }
            (None, _) => return Err(CloseReason::NotLoginFirst),
            (Some(u), _) => u,
        };
        match frame {
            Frame::LoginRequest { user: again } if again == user => {
                Counters::inc(&self.counters().login);
                Ok(Some(Frame::LoginResponse {
                    user,
                    result: result::LOGIN_OK,
                }))
            }
            Frame::ShakeRequest { .. } => Ok(Some(self.shake(shakes, user))),
            Frame::GrabRequest { packet, .. } => Ok(self.grab(key, user, packet)),
            Frame::SendRequest {
                amount,
                count,
                users,
                ..
            } => {
                Counters::inc(&self.counters().send);
                let (result, packet) = match self.client_send(conn, user, amount, count, users) {
                    Ok(id) => (result::SEND_OK, id),
                    Err(code) => {
                        let c = self.counters();
                        Counters::inc(&c.rejected);
                        match code {
                            result::SEND_BUSY => Counters::inc(&c.busy),
                            result::SEND_USER_LIMIT => Counters::inc(&c.user_limited),
                            result::SEND_RATE_LIMITED => Counters::inc(&c.rate_limited),
                            _ => {}
                        }
                        (code, 0)
                    }
                };
                Ok(Some(Frame::SendResponse {
                    user,
                    result,
                    packet,
                    amount,
                }))
            }
            _ => Err(CloseReason::UnexpectedCommand),
        }
    }

    fn closed(&mut self, key: ConnKey, user: Option<u32>, reason: CloseReason) {
        self.counters().close(reason);
        if let Some(user) = user {
            Counters::inc(&self.counters().logouts);
            let home = Directory::home(user, self.workers());
            self.post(
                home,
                Msg::Offline {
                    user,
                    at: self.here(key),
                },
            );
        }
    }

    fn now_unix(&self) -> u64 {
        self.now_unix
    }
}

/// The per-connection send rate (`--send-rate`): a token bucket of one second's worth
/// (at least one token), as the generic cell rate algorithm, so a connection pays
/// four bytes of its slot for it and nothing else.
#[derive(Clone, Copy, Debug)]
pub struct SendRate {
    /// Microseconds between sends at the rate; 0 = unlimited.
    interval: u32,
    /// How far ahead of now the arrival time may run: (burst - 1) intervals.
    tolerance: u32,
}

impl SendRate {
    pub fn new(per_second: f64) -> SendRate {
        if per_second <= 0.0 {
            return SendRate {
                interval: 0,
                tolerance: 0,
            };
        }
        // Slower than one send in 100 s is treated as one send in 100 s.
        let interval = (1e6 / per_second).clamp(1.0, 1e8) as u32;
        let burst = per_second.max(1.0).floor();
        SendRate {
            interval,
            tolerance: ((burst - 1.0) * f64::from(interval)).min(1e9) as u32,
        }
    }

    /// Whether a send at `now_us` is allowed; updates the connection's `tat`.
    pub fn allow(&self, tat: &mut u32, now_us: u32) -> bool {
        if self.interval == 0 {
            return true;
        }
        let ahead = tat.wrapping_sub(now_us) as i32;
        // An arrival time in the past, or further ahead than a legal one can be (the
        // clock wrapped while the connection was idle): the bucket is full.
        if ahead <= 0 || ahead as u64 > u64::from(self.tolerance) + u64::from(self.interval) {
            *tat = now_us.wrapping_add(self.interval);
            return true;
        }
        if ahead as u32 > self.tolerance {
            return false;
        }
        *tat = tat.wrapping_add(self.interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_rate_allows_a_second_of_burst_then_the_rate() {
        let r = SendRate::new(10.0);
        let mut tat = 0u32;
        let t0 = 5_000_000u32;
        let burst = (0..50).filter(|_| r.allow(&mut tat, t0)).count();
        assert_eq!(burst, 10);
        // 100 ms later: one more token.
        assert!(r.allow(&mut tat, t0 + 100_000));
        assert!(!r.allow(&mut tat, t0 + 100_000));
        // Over 10 s at full pipelining: about 10 per second.
        let mut ok = 0;
        for ms in 0..10_000u32 {
            for _ in 0..10 {
                ok += u32::from(r.allow(&mut tat, t0 + 200_000 + ms * 1000));
            }
        }
        assert!((99..=102).contains(&ok), "{ok}");
        // Idle across a wrap of the microsecond clock: the bucket is full again.
        let later = tat.wrapping_add(u32::MAX / 2 + 7);
        assert!((0..10).all(|_| r.allow(&mut tat, later)));
        assert!(SendRate::new(0.0).allow(&mut tat, 0), "0 = unlimited");
        let slow = SendRate::new(0.5);
        let mut t = 0;
        assert!(slow.allow(&mut t, 1_000));
        assert!(!slow.allow(&mut t, 1_000_000));
        assert!(slow.allow(&mut t, 2_001_000));
    }
}
