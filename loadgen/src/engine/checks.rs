//! The answer checks: what counts as a right answer, a wrong one, or a lying server.
//!
//! Every frame a user's connection receives goes through [`Answers::check`], which
//! holds what this side asked for (the grabs and client sends still unanswered; the
//! shakes are the connection's own ring) and decides, without any socket or clock, what
//! the frame means: counted (right or wrong), a login, a notification to act on, or a
//! reason to close the connection. The engine applies that decision; the rules live
//! here alone, so they are tested frame by frame below.
//!
//! A failed check counts as `bad_answer` and never as money: a shake "won" with amount
//! 0, a grab granting more than the packet held, an answer to a request never made, an
//! answer naming another user, a send answer echoing another amount.

use crate::conn::{Conn, LOGGING_IN, READY};
use crate::metrics::{Failure, Pending};
use redpacket_protocol::{result, Frame, MAX_RECIPIENTS};
use std::collections::{HashMap, VecDeque};

/// What a checked frame asks of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Counted (as an answer or as a bad one); nothing else to do.
    Counted,
    /// The login was accepted: the user is in.
    LoggedIn,
    /// A packet for this user: grab `packet` (of `amount` cents) after a think time.
    Notified { packet: u32, amount: u32 },
    /// The connection must close: a refused login, or a frame before login.
    Close(Failure),
}

/// The requests of one worker's users still awaiting an answer, beyond the shakes
/// (which each [`Conn`] keeps in its ring).
#[derive(Default)]
pub(crate) struct Answers {
    /// Grabs sent and not answered: (user index, packet) -> the notified amount.
    grabs_out: HashMap<(u32, u32), u32>,
    /// Amounts of client sends not yet answered, per user index, in order.
    sends_out: HashMap<u32, VecDeque<u32>>,
}

impl Answers {
    /// A grab of `packet` (notified with `amount` cents) went out for user `idx`.
    pub(crate) fn grab_sent(&mut self, c: &mut Conn, idx: u32, packet: u32, amount: u32) {
        c.grabs += 1;
        self.grabs_out.insert((idx, packet), amount);
    }

    /// A client send of `amount` cents went out for user `idx`.
    pub(crate) fn send_sent(&mut self, c: &mut Conn, idx: u32, amount: u32) {
        c.sends += 1;
        self.sends_out.entry(idx).or_default().push_back(amount);
    }

    /// User `idx`'s connection closed: none of its answers will come.
    pub(crate) fn forget(&mut self, idx: u32, had_grabs: bool) {
        if had_grabs {
            self.grabs_out.retain(|k, _| k.0 != idx);
        }
        self.sends_out.remove(&idx);
    }

    /// Checks and counts frame `f` received by user `me` (index `idx`, connection `c`)
    /// at `answered_at` (worker clock, ns). `inflight` drops by the requests answered.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check(
        &mut self,
        idx: u32,
        me: u32,
        c: &mut Conn,
        f: Frame,
        answered_at: u64,
        tally: &mut Pending,
        inflight: &mut u64,
    ) -> Seen {
        let mut r = Received {
            idx,
            me,
            c,
            answered_at,
            tally,
            inflight,
        };
        match f {
            Frame::LoginResponse { user, result } if r.c.state == LOGGING_IN => {
                if user != me || result != result::LOGIN_OK {
                    return Seen::Close(Failure::Login);
                }
                Seen::LoggedIn
            }
            _ if r.c.state != READY => {
                r.bad();
                Seen::Close(Failure::Login)
            }
            Frame::ShakeResponse {
                user,
                result,
                amount,
                ..
            } => shake_answer(&mut r, user, result, amount),
            Frame::SendNotification {
                packet,
                amount,
                shares,
                users,
            } => notification(&mut r, packet, amount, shares, &users),
            Frame::GrabResponse { packet, amount } => self.grab_answer(&mut r, packet, amount),
            Frame::SendResponse {
                user,
                result,
                amount,
                ..
            } => self.send_answer(&mut r, user, result, amount),
            // A request frame or a second login answer: not something a server sends.
            _ => r.bad(),
        }
    }

    /// The answer to one of our grabs of `packet`: `amount` cents, at most what the
    /// notification said the packet held.
    fn grab_answer(&mut self, r: &mut Received, packet: u32, amount: u32) -> Seen {
        match self.grabs_out.remove(&(r.idx, packet)) {
            Some(total) if r.c.grabs > 0 && amount <= total => {
                r.c.grabs -= 1;
                r.answered();
                let packets = &mut r.tally.counts.packets;
                if amount == 0 {
                    packets.grab_denied += 1;
                } else {
                    packets.grab_won += 1;
                    packets.grabbed_cents += u64::from(amount);
                }
                Seen::Counted
            }
            Some(_) => {
                // More than the packet held: answered, but wrong money.
                r.c.grabs = r.c.grabs.saturating_sub(1);
                r.answered();
                r.bad()
            }
            // A grab never made (or made by another user).
            None => r.bad(),
        }
    }

    /// The answer to one of our client sends: for us, in order, echoing the amount.
    fn send_answer(&mut self, r: &mut Received, user: u32, result: u32, amount: u32) -> Seen {
        if r.c.sends == 0 || user != r.me || result > result::SEND_RATE_LIMITED {
            return r.bad();
        }
        r.c.sends -= 1;
        r.answered();
        let asked = self.sends_out.get_mut(&r.idx).and_then(|q| q.pop_front());
        if self.sends_out.get(&r.idx).is_some_and(|q| q.is_empty()) {
            self.sends_out.remove(&r.idx);
        }
        if asked != Some(amount) {
            // The server echoes the amount asked; anything else is wrong money.
            return r.bad();
        }
        let packets = &mut r.tally.counts.packets;
        if result == result::SEND_OK {
            packets.send_ok += 1;
            packets.sent_cents += u64::from(amount);
        } else {
            packets.send_refused += 1;
        }
        Seen::Counted
    }
}

/// A received frame's context: whose it is, when it came, where it is counted.
struct Received<'a> {
    idx: u32,
    me: u32,
    c: &'a mut Conn,
    answered_at: u64,
    tally: &'a mut Pending,
    inflight: &'a mut u64,
}

impl Received<'_> {
    /// A request of ours got its answer.
    fn answered(&mut self) {
        *self.inflight = self.inflight.saturating_sub(1);
    }

    /// Counts a wrong answer.
    fn bad(&mut self) -> Seen {
        self.tally.counts.error_kinds.bad_answer += 1;
        Seen::Counted
    }
}

/// The answer to the oldest shake in flight (or one answered late): timed from its
/// scheduled time when sane; "got" must carry money, "none" and "overloaded" none.
fn shake_answer(r: &mut Received, user: u32, result: u32, amount: u32) -> Seen {
    let sane = user == r.me
        && match result {
            result::GOT => amount > 0,
            result::NONE | result::OVERLOADED => amount == 0,
            _ => false,
        };
    if r.c.late > 0 {
        r.c.late -= 1;
        r.tally.counts.late += 1;
    } else if let Some(sched) = r.c.pop_pend() {
        r.answered();
        if sane {
            r.tally
                .record_us(r.answered_at.saturating_sub(sched) / 1000);
        }
    } else {
        // An answer to a shake never made.
        return r.bad();
    }
    if !sane {
        return r.bad();
    }
    let counts = &mut r.tally.counts;
    match result {
        result::GOT => {
            counts.results.got += 1;
            counts.packets.won_cents += u64::from(amount);
        }
        result::NONE => counts.results.none += 1,
        _ => counts.results.overloaded += 1,
    }
    Seen::Counted
}

/// A packet pushed to us: at most [`MAX_RECIPIENTS`] shares, a cent each at least, and
/// we among its recipients.
fn notification(
    r: &mut Received,
    packet: u32,
    amount: u32,
    shares: u32,
    users: &[u32; MAX_RECIPIENTS],
) -> Seen {
    let n = shares as usize;
    let sane = (1..=MAX_RECIPIENTS).contains(&n) && amount >= shares && users[..n].contains(&r.me);
    if !sane {
        return r.bad();
    }
    r.tally.counts.packets.notified += 1;
    Seen::Notified { packet, amount }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Counts;

    const ME: u32 = 1000;
    const IDX: u32 = 0;

    /// One user's side of the exchange: its connection, what it asked, what it counted.
    struct User {
        c: Conn,
        answers: Answers,
        tally: Pending,
        inflight: u64,
    }

    impl User {
        fn ready() -> User {
            let mut c = Conn::new();
            c.state = READY;
            User {
                c,
                answers: Answers::default(),
                tally: Pending::default(),
                inflight: 0,
            }
        }
        fn shake_sent(&mut self, sched_ns: u64) {
            self.c.push_pend(sched_ns);
            self.inflight += 1;
        }
        fn grab_sent(&mut self, packet: u32, amount: u32) {
            self.answers.grab_sent(&mut self.c, IDX, packet, amount);
            self.inflight += 1;
        }
        fn send_sent(&mut self, amount: u32) {
            self.answers.send_sent(&mut self.c, IDX, amount);
            self.inflight += 1;
        }
        fn got(&mut self, f: Frame) -> Seen {
            self.answers.check(
                IDX,
                ME,
                &mut self.c,
                f,
                5_000_000,
                &mut self.tally,
                &mut self.inflight,
            )
        }
        fn counts(&self) -> &Counts {
            &self.tally.counts
        }
        fn bad(&self) -> u64 {
            self.counts().error_kinds.bad_answer
        }
    }

    fn shake(user: u32, result: u32, amount: u32) -> Frame {
        Frame::ShakeResponse {
            user,
            result,
            packet: 1,
            amount,
        }
    }

    #[test]
    fn right_shake_answers_are_counted_and_timed() {
        let mut u = User::ready();
        u.shake_sent(1_000_000);
        u.shake_sent(2_000_000);
        u.shake_sent(3_000_000);
        assert_eq!(u.got(shake(ME, result::GOT, 250)), Seen::Counted);
        assert_eq!(u.got(shake(ME, result::NONE, 0)), Seen::Counted);
        assert_eq!(u.got(shake(ME, result::OVERLOADED, 0)), Seen::Counted);
        let c = u.counts();
        assert_eq!(
            (c.results.got, c.results.none, c.results.overloaded),
            (1, 1, 1)
        );
        assert_eq!((c.packets.won_cents, u.bad(), u.inflight), (250, 0, 0));
        // Latency from the scheduled time (1 ms) to the answer (5 ms), first one.
        assert_eq!(u.tally.latency_us, [4000, 3000, 2000]);
    }

    #[test]
    fn a_lying_shake_answer_is_bad_and_wins_nothing() {
        let mut u = User::ready();
        for t in 1..=4 {
            u.shake_sent(t);
        }
        u.got(shake(ME, result::GOT, 0)); // a win of nothing
        u.got(shake(ME, result::NONE, 7)); // none left, yet money
        u.got(shake(ME + 1, result::GOT, 5)); // another user's answer
        u.got(shake(ME, 99, 0)); // no such result
        assert_eq!(u.bad(), 4);
        assert_eq!(u.counts().packets.won_cents, 0);
        assert_eq!(u.counts().answered(), 0);
        // Each still answered a request: none is left waiting, none timed.
        assert_eq!((u.inflight, u.c.npend, u.tally.latency_us.len()), (0, 0, 0));
    }

    #[test]
    fn an_answer_to_a_shake_never_made_is_bad() {
        let mut u = User::ready();
        assert_eq!(u.got(shake(ME, result::NONE, 0)), Seen::Counted);
        assert_eq!((u.bad(), u.counts().results.none), (1, 0));
    }

    #[test]
    fn a_late_answer_is_counted_late_not_timed() {
        let mut u = User::ready();
        u.c.late = 1;
        u.got(shake(ME, result::GOT, 3));
        let c = u.counts();
        assert_eq!((c.late, c.results.got, c.packets.won_cents), (1, 1, 3));
        assert!(u.tally.latency_us.is_empty());
    }

    #[test]
    fn grabs_are_checked_against_the_notified_packet() {
        let mut u = User::ready();
        let seen = u.got(Frame::SendNotification {
            packet: 9,
            amount: 300,
            shares: 3,
            users: [7, ME, 8],
        });
        assert_eq!(
            seen,
            Seen::Notified {
                packet: 9,
                amount: 300
            }
        );
        u.grab_sent(9, 300);
        u.got(Frame::GrabResponse {
            packet: 9,
            amount: 120,
        });
        let p = u.counts().packets;
        assert_eq!((p.notified, p.grab_won, p.grabbed_cents), (1, 1, 120));
        assert_eq!((u.bad(), u.inflight, u.c.grabs), (0, 0, 0));
        // A second answer for the same packet: a grab never made.
        u.got(Frame::GrabResponse {
            packet: 9,
            amount: 1,
        });
        assert_eq!((u.bad(), u.counts().packets.grabbed_cents), (1, 120));
        // A denied grab counts as such.
        u.grab_sent(10, 50);
        u.got(Frame::GrabResponse {
            packet: 10,
            amount: 0,
        });
        assert_eq!(u.counts().packets.grab_denied, 1);
    }

    #[test]
    fn a_grab_of_more_than_the_packet_held_is_bad() {
        let mut u = User::ready();
        u.grab_sent(4, 100);
        u.got(Frame::GrabResponse {
            packet: 4,
            amount: 101,
        });
        assert_eq!(u.bad(), 1);
        assert_eq!(u.counts().packets.grabbed_cents, 0);
        // Answered all the same: nothing left waiting for it.
        assert_eq!((u.inflight, u.c.grabs), (0, 0));
    }

    #[test]
    fn notifications_must_name_this_user_with_sane_shares() {
        let mut u = User::ready();
        let n = |amount, shares, users| Frame::SendNotification {
            packet: 1,
            amount,
            shares,
            users,
        };
        assert_eq!(u.got(n(100, 2, [1, 2, ME])), Seen::Counted); // ME past the shares
        u.got(n(100, 0, [ME, 0, 0])); // no share
        u.got(n(100, 4, [ME, 1, 2])); // more than MAX_RECIPIENTS
        u.got(n(1, 2, [ME, 1, 0])); // less than a cent a share
        assert_eq!((u.bad(), u.counts().packets.notified), (4, 0));
    }

    #[test]
    fn send_answers_must_echo_the_amount_asked_in_order() {
        let send = |user, result, amount| Frame::SendResponse {
            user,
            result,
            packet: 3,
            amount,
        };
        let mut u = User::ready();
        u.send_sent(500);
        u.send_sent(600);
        u.got(send(ME, result::SEND_OK, 500));
        u.got(send(ME, result::SEND_BUSY, 600));
        let p = u.counts().packets;
        assert_eq!((p.send_ok, p.send_refused, p.sent_cents), (1, 1, 500));
        assert_eq!((u.bad(), u.inflight), (0, 0));
        // Never asked: bad. Wrong amount, wrong user, unknown result: bad.
        u.got(send(ME, result::SEND_OK, 500));
        u.send_sent(700);
        u.got(send(ME, result::SEND_OK, 701));
        u.send_sent(700);
        u.got(send(ME + 1, result::SEND_OK, 700));
        u.got(send(ME, 42, 700));
        assert_eq!(u.bad(), 4);
        assert_eq!(u.counts().packets.sent_cents, 500);
    }

    #[test]
    fn logins_and_frames_out_of_place() {
        let mut u = User::ready();
        u.c.state = LOGGING_IN;
        let ok = Frame::LoginResponse {
            user: ME,
            result: result::LOGIN_OK,
        };
        assert_eq!(u.got(ok), Seen::LoggedIn);
        let wrong_user = Frame::LoginResponse {
            user: ME + 1,
            result: result::LOGIN_OK,
        };
        assert_eq!(u.got(wrong_user), Seen::Close(Failure::Login));
        let refused = Frame::LoginResponse {
            user: ME,
            result: 1,
        };
        assert_eq!(u.got(refused), Seen::Close(Failure::Login));
        // Anything but the login answer before login: bad, and the connection closes.
        assert_eq!(
            u.got(shake(ME, result::NONE, 0)),
            Seen::Close(Failure::Login)
        );
        assert_eq!(u.bad(), 1);
        // After login: a second login answer or a request frame is bad, not fatal.
        u.c.state = READY;
        assert_eq!(u.got(ok), Seen::Counted);
        assert_eq!(u.got(Frame::ShakeRequest { user: ME }), Seen::Counted);
        assert_eq!(u.bad(), 3);
    }

    #[test]
    fn a_closed_connection_forgets_its_requests() {
        let mut u = User::ready();
        u.grab_sent(1, 10);
        u.send_sent(20);
        u.answers.forget(IDX, true);
        u.c.grabs = 0;
        u.c.sends = 0;
        u.got(Frame::GrabResponse {
            packet: 1,
            amount: 5,
        });
        assert_eq!((u.bad(), u.counts().packets.grab_won), (1, 0));
    }
}
