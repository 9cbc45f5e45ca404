//! The red-packet wire format: bytes <-> frames, and nothing else.
//!
//! No I/O and no allocation live here, so the server, the load generator and the tests
//! all speak through this one module. Decoding is two questions in one call: "is a whole
//! frame buffered?" (`Ok(None)`: read more, not an error) and "is it a frame we accept?"
//! (`Err`: the connection that sent it is broken and is closed).
//!
//! Every frame is a 12-byte header, then a payload of big-endian `u32`s:
//!
//! | bytes | field                                   |
//! |-------|-----------------------------------------|
//! | 0-1   | `u16` total frame length, header included |
//! | 2-3   | `u16` command                           |
//! | 4-11  | `u64` sender's unix time, seconds       |
//!
//! Commands 0x0000-0x0006 are the old system's, unchanged. 0x0007/0x0008 are ours: a
//! logged-in user sends a red packet to named users. Old clients never send 0x0007, so
//! they never see 0x0008; the recipients of such a packet get the old notification frame
//! (0x0004), which is why a send names at most [`MAX_RECIPIENTS`] users.
//!
//! [`framefuzz`] (feature `fuzz`, always in tests) runs the codec against a plain
//! reference model on random streams.

#[cfg(any(test, feature = "fuzz"))]
pub mod framefuzz;

/// Bytes in the header that starts every frame.
pub const HEADER_LEN: usize = 12;
/// The longest frame any side may send. The old reader rejected a frame whose length
/// minus 4 fell outside 4..=40, i.e. a total outside 8..=44; a frame also needs a whole
/// header, so we accept 12..=44.
pub const MAX_FRAME_LEN: usize = 44;
/// The shortest frame: a bare header.
pub const MIN_FRAME_LEN: usize = HEADER_LEN;
/// Recipients one user-to-user packet can name: the notification frame has three slots.
pub const MAX_RECIPIENTS: usize = 3;

/// Command numbers, as on the wire.
pub mod cmd {
    pub const LOGIN_REQUEST: u16 = 0x0000;
    pub const LOGIN_RESPONSE: u16 = 0x0001;
    pub const SHAKE_REQUEST: u16 = 0x0002;
    pub const SHAKE_RESPONSE: u16 = 0x0003;
    pub const SEND_NOTIFICATION: u16 = 0x0004;
    pub const GRAB_REQUEST: u16 = 0x0005;
    pub const GRAB_RESPONSE: u16 = 0x0006;
    /// Ours: a user sends a red packet to named users.
    pub const SEND_REQUEST: u16 = 0x0007;
    /// Ours: the answer to [`SEND_REQUEST`].
    pub const SEND_RESPONSE: u16 = 0x0008;
}

/// Result codes carried in responses.
pub mod result {
    /// Login accepted (the only login result the old clients know).
    pub const LOGIN_OK: u32 = 0;
    /// Shake: the caller got a packet.
    pub const GOT: u32 = 14;
    /// Shake: no packet left for this request.
    pub const NONE: u32 = 15;
    /// Shake: the server is over its request budget and shed this request.
    pub const OVERLOADED: u32 = 17;
    /// Send: created; the response carries the packet id.
    pub const SEND_OK: u32 = 0;
    /// Send: the amount cannot give every recipient at least one cent.
    pub const SEND_BAD_AMOUNT: u32 = 1;
    /// Send: no recipients, too many, repeated, or the sender among them.
    pub const SEND_BAD_RECIPIENTS: u32 = 2;
    /// Send: the server (this worker's share of `--max-outstanding-sends`) holds as
    /// many outstanding packets as it is allowed to: everyone's sends wait for room.
    pub const SEND_BUSY: u32 = 3;
    /// Send: this user already has `--max-sends-per-user` packets outstanding: the
    /// sender's own sends wait until recipients grab or packets expire.
    pub const SEND_USER_LIMIT: u32 = 4;
    /// Send: this connection sends faster than `--send-rate` per second.
    pub const SEND_RATE_LIMITED: u32 = 5;
}

/// One decoded frame, header time excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    LoginRequest {
        user: u32,
    },
    LoginResponse {
        user: u32,
        result: u32,
    },
    ShakeRequest {
        user: u32,
    },
    ShakeResponse {
        user: u32,
        result: u32,
        packet: u32,
        amount: u32,
    },
    /// Pushed by the server to each recipient of a user-to-user packet. `users` holds the
    /// recipients, zero-padded past `shares`.
    SendNotification {
        packet: u32,
        amount: u32,
        shares: u32,
        users: [u32; MAX_RECIPIENTS],
    },
    /// Old clients send 0 as `user`; the server trusts only the connection's login.
    GrabRequest {
        user: u32,
        packet: u32,
    },
    /// `amount` is 0 when nothing was granted.
    GrabResponse {
        packet: u32,
        amount: u32,
    },
    /// `count` recipients in `users` (zero-padded), `amount` cents in all.
    SendRequest {
        user: u32,
        amount: u32,
        count: u32,
        users: [u32; MAX_RECIPIENTS],
    },
    SendResponse {
        user: u32,
        result: u32,
        packet: u32,
        amount: u32,
    },
}

/// Why bytes are not a frame we accept. Each closes the connection that sent them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is outside `MIN_FRAME_LEN..=MAX_FRAME_LEN`.
    BadLength { len: u16 },
    /// A command number this protocol does not define.
    UnknownCommand { cmd: u16 },
    /// A known command whose length is not that command's length.
    LengthMismatch { cmd: u16, len: u16, expected: u16 },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            FrameError::BadLength { len } => write!(
                f,
                "frame length {len} outside {MIN_FRAME_LEN}..={MAX_FRAME_LEN}"
            ),
            FrameError::UnknownCommand { cmd } => write!(f, "unknown command {cmd:#06x}"),
            FrameError::LengthMismatch { cmd, len, expected } => write!(
                f,
                "command {cmd:#06x} has length {len}, expected {expected}"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// A frame taken off the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub frame: Frame,
    /// The sender's unix time from the header, seconds.
    pub time: u64,
    /// Bytes the frame took; the next frame starts there.
    pub len: usize,
}

/// The total length of each command's frame.
pub fn frame_len(command: u16) -> Option<u16> {
    Some(match command {
        cmd::LOGIN_REQUEST | cmd::SHAKE_REQUEST => 16,
        cmd::LOGIN_RESPONSE | cmd::GRAB_REQUEST | cmd::GRAB_RESPONSE => 20,
        cmd::SHAKE_RESPONSE | cmd::SEND_RESPONSE => 28,
        cmd::SEND_NOTIFICATION | cmd::SEND_REQUEST => 36,
        _ => return None,
    })
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    (u64::from(u32_at(b, at)) << 32) | u64::from(u32_at(b, at + 4))
}

/// Takes the first frame off `buf`. `Ok(None)` means the buffer holds less than one frame
/// (read more); an error means the bytes can never become an accepted frame.
///
/// The length field is checked as soon as its two bytes arrive, so a peer cannot make
/// us wait for (or buffer) a frame we would reject anyway.
pub fn decode(buf: &[u8]) -> Result<Option<Decoded>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let len = u16_at(buf, 0);
    if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&usize::from(len)) {
        return Err(FrameError::BadLength { len });
    }
    if buf.len() < 4 {
        return Ok(None);
    }
    let command = u16_at(buf, 2);
    let expected = frame_len(command).ok_or(FrameError::UnknownCommand { cmd: command })?;
    if len != expected {
        return Err(FrameError::LengthMismatch {
            cmd: command,
            len,
            expected,
        });
    }
    let len = usize::from(len);
    if buf.len() < len {
        return Ok(None);
    }
    let b = &buf[..len];
    let w = |i: usize| u32_at(b, HEADER_LEN + 4 * i);
    let users = |from: usize| [w(from), w(from + 1), w(from + 2)];
    let frame = match command {
        cmd::LOGIN_REQUEST => Frame::LoginRequest { user: w(0) },
        cmd::LOGIN_RESPONSE => Frame::LoginResponse {
            user: w(0),
            result: w(1),
        },
        cmd::SHAKE_REQUEST => Frame::ShakeRequest { user: w(0) },
        cmd::SHAKE_RESPONSE => Frame::ShakeResponse {
            user: w(0),
            result: w(1),
            packet: w(2),
            amount: w(3),
        },
        cmd::SEND_NOTIFICATION => Frame::SendNotification {
            packet: w(0),
            amount: w(1),
            shares: w(2),
            users: users(3),
        },
        cmd::GRAB_REQUEST => Frame::GrabRequest {
            user: w(0),
            packet: w(1),
        },
        cmd::GRAB_RESPONSE => Frame::GrabResponse {
            packet: w(0),
            amount: w(1),
        },
        cmd::SEND_REQUEST => Frame::SendRequest {
            user: w(0),
            amount: w(1),
            count: w(2),
            users: users(3),
        },
        cmd::SEND_RESPONSE => Frame::SendResponse {
            user: w(0),
            result: w(1),
            packet: w(2),
            amount: w(3),
        },
        // frame_len() above already rejected every other command.
        other => return Err(FrameError::UnknownCommand { cmd: other }),
    };
    Ok(Some(Decoded {
        frame,
        time: u64_at(b, 4),
        len,
    }))
}

/// What a connection keeps between two reads: the start of a frame the last read cut,
/// under [`MAX_FRAME_LEN`] bytes, held inline (no heap).
#[derive(Clone, Copy, Debug)]
pub struct Partial {
    bytes: [u8; MAX_FRAME_LEN],
    len: u8,
}

impl Default for Partial {
    fn default() -> Partial {
        Partial {
            bytes: [0; MAX_FRAME_LEN],
            len: 0,
        }
    }
}

impl Partial {
    /// Bytes carried.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the carried bytes to the start of `buf` (at least [`MAX_FRAME_LEN`]
    /// long); the next read goes after them. Returns how many.
    pub fn restore(&self, buf: &mut [u8]) -> usize {
        let n = self.len();
        buf[..n].copy_from_slice(&self.bytes[..n]);
        n
    }
}

/// The server's frame handling over one read: `buf` is the carried bytes (see
/// [`Partial::restore`]) followed by what was read. Decodes every whole frame in
/// order, handing each to `on_frame`, until `on_frame` says stop (`false`), a frame is
/// refused (`Err`: the connection closes), or the bytes run out: then the incomplete
/// tail, shorter than one frame, is carried in `partial` to the next read.
pub fn decode_stream(
    buf: &[u8],
    partial: &mut Partial,
    mut on_frame: impl FnMut(Decoded) -> bool,
) -> Result<(), FrameError> {
    let mut at = 0;
    while let Some(d) = decode(&buf[at..])? {
        at += d.len;
        if !on_frame(d) {
            return Ok(());
        }
    }
    // decode() asks for more only while less than one frame is left.
    let rest = &buf[at..];
    partial.bytes[..rest.len()].copy_from_slice(rest);
    partial.len = rest.len() as u8;
    Ok(())
}

/// An encoded frame, held inline: encoding never allocates.
#[derive(Clone, Copy)]
pub struct Encoded {
    bytes: [u8; MAX_FRAME_LEN],
    len: u8,
}

impl Encoded {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoded({:02x?})", self.as_bytes())
    }
}

impl Frame {
    /// The command number of this frame.
    pub fn command(&self) -> u16 {
        match self {
            Frame::LoginRequest { .. } => cmd::LOGIN_REQUEST,
            Frame::LoginResponse { .. } => cmd::LOGIN_RESPONSE,
            Frame::ShakeRequest { .. } => cmd::SHAKE_REQUEST,
            Frame::ShakeResponse { .. } => cmd::SHAKE_RESPONSE,
            Frame::SendNotification { .. } => cmd::SEND_NOTIFICATION,
            Frame::GrabRequest { .. } => cmd::GRAB_REQUEST,
            Frame::GrabResponse { .. } => cmd::GRAB_RESPONSE,
            Frame::SendRequest { .. } => cmd::SEND_REQUEST,
            Frame::SendResponse { .. } => cmd::SEND_RESPONSE,
        }
    }

    /// Encodes the frame with `time` (unix seconds) in its header.
    pub fn encode(&self, time: u64) -> Encoded {
        let command = self.command();
        let mut words = [0u32; 8];
        let n = match *self {
            Frame::LoginRequest { user } | Frame::ShakeRequest { user } => {
                words[0] = user;
                1
            }
            Frame::LoginResponse { user, result } => {
                words[..2].copy_from_slice(&[user, result]);
                2
            }
            Frame::GrabRequest { user, packet } => {
                words[..2].copy_from_slice(&[user, packet]);
                2
            }
            Frame::GrabResponse { packet, amount } => {
                words[..2].copy_from_slice(&[packet, amount]);
                2
            }
            Frame::ShakeResponse {
                user,
                result,
                packet,
                amount,
            }
            | Frame::SendResponse {
                user,
                result,
                packet,
                amount,
            } => {
                words[..4].copy_from_slice(&[user, result, packet, amount]);
                4
            }
            Frame::SendNotification {
                packet: a,
                amount: b,
                shares: c,
                users,
            }
            | Frame::SendRequest {
                user: a,
                amount: b,
                count: c,
                users,
            } => {
                words[..6].copy_from_slice(&[a, b, c, users[0], users[1], users[2]]);
                6
            }
        };
        let len = HEADER_LEN + 4 * n;
        let mut bytes = [0u8; MAX_FRAME_LEN];
        bytes[0..2].copy_from_slice(&(len as u16).to_be_bytes());
        bytes[2..4].copy_from_slice(&command.to_be_bytes());
        bytes[4..12].copy_from_slice(&time.to_be_bytes());
        for (i, w) in words[..n].iter().enumerate() {
            let at = HEADER_LEN + 4 * i;
            bytes[at..at + 4].copy_from_slice(&w.to_be_bytes());
        }
        Encoded {
            bytes,
            len: len as u8,
        }
    }
}

/// The current unix time in seconds, as frame headers carry it.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_frames() -> Vec<Frame> {
        vec![
            Frame::LoginRequest { user: 7 },
            Frame::LoginResponse { user: 7, result: 0 },
            Frame::ShakeRequest { user: u32::MAX },
            Frame::ShakeResponse {
                user: 1,
                result: result::GOT,
                packet: 99,
                amount: 309,
            },
            Frame::SendNotification {
                packet: 5,
                amount: 1000,
                shares: 3,
                users: [1, 2, 3],
            },
            Frame::GrabRequest { user: 0, packet: 5 },
            Frame::GrabResponse {
                packet: 5,
                amount: 333,
            },
            Frame::SendRequest {
                user: 4,
                amount: 900,
                count: 2,
                users: [8, 9, 0],
            },
            Frame::SendResponse {
                user: 4,
                result: result::SEND_OK,
                packet: 12,
                amount: 900,
            },
        ]
    }

    #[test]
    fn every_frame_round_trips_with_its_documented_length() {
        for f in all_frames() {
            let e = f.encode(0x0102_0304_0506_0708);
            assert_eq!(
                e.as_bytes().len(),
                usize::from(frame_len(f.command()).unwrap())
            );
            let d = decode(e.as_bytes()).unwrap().unwrap();
            assert_eq!(d.frame, f);
            assert_eq!(d.time, 0x0102_0304_0506_0708);
            assert_eq!(d.len, e.as_bytes().len());
        }
    }

    #[test]
    fn old_wire_bytes_are_exact() {
        // A login for user 258 at time 1, byte by byte as the old client wrote it.
        let e = Frame::LoginRequest { user: 258 }.encode(1);
        assert_eq!(
            e.as_bytes(),
            &[0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2]
        );
        let e = Frame::ShakeResponse {
            user: 1,
            result: 15,
            packet: 0,
            amount: 0,
        }
        .encode(0);
        assert_eq!(&e.as_bytes()[..4], &[0, 28, 0, 3]);
        assert_eq!(&e.as_bytes()[16..20], &[0, 0, 0, 15]);
    }

    #[test]
    fn every_prefix_of_a_frame_asks_for_more() {
        for f in all_frames() {
            let e = f.encode(3);
            for cut in 0..e.as_bytes().len() {
                assert_eq!(decode(&e.as_bytes()[..cut]), Ok(None), "{f:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn frames_back_to_back_decode_in_order() {
        let mut buf = Vec::new();
        for f in all_frames() {
            buf.extend_from_slice(f.encode(9).as_bytes());
        }
        let mut at = 0;
        for f in all_frames() {
            let d = decode(&buf[at..]).unwrap().unwrap();
            assert_eq!(d.frame, f);
            at += d.len;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn lengths_outside_the_range_are_rejected_at_two_bytes() {
        for len in [0u16, 1, 7, 8, 11, 45, 100, u16::MAX] {
            let b = len.to_be_bytes();
            assert_eq!(decode(&b), Err(FrameError::BadLength { len }));
        }
    }

    #[test]
    fn unknown_commands_are_rejected() {
        for command in [0x0009u16, 0x00ff, 0x1234, u16::MAX] {
            let mut b = [0u8; 16];
            b[0..2].copy_from_slice(&16u16.to_be_bytes());
            b[2..4].copy_from_slice(&command.to_be_bytes());
            assert_eq!(decode(&b), Err(FrameError::UnknownCommand { cmd: command }));
            // Rejected before the whole frame arrives.
            assert_eq!(
                decode(&b[..4]),
                Err(FrameError::UnknownCommand { cmd: command })
            );
        }
    }

    #[test]
    fn a_known_command_with_the_wrong_length_is_rejected() {
        let mut b = [0u8; 20];
        b[0..2].copy_from_slice(&20u16.to_be_bytes());
        b[2..4].copy_from_slice(&cmd::SHAKE_REQUEST.to_be_bytes());
        assert_eq!(
            decode(&b),
            Err(FrameError::LengthMismatch {
                cmd: cmd::SHAKE_REQUEST,
                len: 20,
                expected: 16
            })
        );
    }

    #[test]
    fn random_garbage_never_panics_and_never_overreads() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200_000 {
            let n = rng.random_range(0..64);
            let buf: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            if let Ok(Some(d)) = decode(&buf) {
                assert!(d.len <= buf.len());
                assert_eq!(d.frame.encode(d.time).as_bytes(), &buf[..d.len]);
            }
        }
    }
}
