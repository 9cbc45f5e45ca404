//! A randomised run of the codec and the server's frame handling against a reference
//! model, so "never panics, never accepts a bad frame" is checked on billions of bytes,
//! not only on the cases someone thought of.
//!
//! Each round is one connection's byte stream: random frames built byte by byte (every
//! command, random times and fields, edge values often), then a clean end, a frame cut
//! short, or something bad (a length out of range, an unknown command, a known command
//! with another's length, or random garbage). The stream is fed to
//! [`protocol::decode_stream`] as the server feeds it (carried bytes plus one read),
//! split at random boundaries (often one byte at a time, sometimes a whole read), and
//! the result must match [`model`], a deliberately plain walk over the whole stream
//! written from the wire table alone: the same frames with the same fields, in order;
//! a refusal of the same kind in the very read that brought the deciding byte; or, for
//! a stream that just stops, no error and exactly the unfinished frame carried.
//!
//! The unit tests run a few 10^5 frames; `cargo run --release -p redpacket-protocol --features fuzz --example frame_fuzz`
//! runs 10^8 or more (bench/README.md, "Randomised frame run").

use crate::{self as protocol, Decoded, Frame, FrameError, Partial, MAX_FRAME_LEN};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The wire table: every command and its total length, nothing else.
const TABLE: [(u16, usize); 9] = [
    (0x0000, 16),
    (0x0001, 20),
    (0x0002, 16),
    (0x0003, 28),
    (0x0004, 36),
    (0x0005, 20),
    (0x0006, 20),
    (0x0007, 36),
    (0x0008, 28),
];

/// Bytes one read may bring, as in a round of the server's SET (`READ_BUF` in
/// `server/set.rs`).
const READ: usize = 4096;

/// A frame as the model sees it: where it starts, its command, time and payload words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelFrame {
    pub at: usize,
    pub cmd: u16,
    pub time: u64,
    pub words: [u32; 8],
    pub n: usize,
}

/// How the model says a stream ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelEnd {
    /// On a frame boundary, or inside a frame that could still become valid; the
    /// unfinished bytes start at this offset.
    Open { tail: usize },
    /// Refused: `decided_at` is how many bytes of the stream it takes to know.
    Refused {
        decided_at: usize,
        error: FrameError,
    },
}

fn be16(b: &[u8]) -> u16 {
    u16::from(b[0]) << 8 | u16::from(b[1])
}

fn be32(b: &[u8]) -> u32 {
    b.iter().take(4).fold(0, |a, &x| a << 8 | u32::from(x))
}

/// The reference: walks the whole stream with the wire table.
pub fn model(stream: &[u8], frames: &mut Vec<ModelFrame>) -> ModelEnd {
    frames.clear();
    let mut p = 0;
    loop {
        let left = stream.len() - p;
        if left < 2 {
            return ModelEnd::Open { tail: p };
        }
        let len = be16(&stream[p..]);
        if !(12..=44).contains(&len) {
            return ModelEnd::Refused {
                decided_at: p + 2,
                error: FrameError::BadLength { len },
            };
        }
        if left < 4 {
            return ModelEnd::Open { tail: p };
        }
        let cmd = be16(&stream[p + 2..]);
        let Some(&(_, want)) = TABLE.iter().find(|(c, _)| *c == cmd) else {
            return ModelEnd::Refused {
                decided_at: p + 4,
                error: FrameError::UnknownCommand { cmd },
            };
        };
        if usize::from(len) != want {
            return ModelEnd::Refused {
                decided_at: p + 4,
                error: FrameError::LengthMismatch {
                    cmd,
                    len,
                    expected: want as u16,
                },
            };
        }
        if left < want {
            return ModelEnd::Open { tail: p };
        }
        let time = u64::from(be32(&stream[p + 4..])) << 32 | u64::from(be32(&stream[p + 8..]));
        let mut words = [0; 8];
        let n = (want - 12) / 4;
        for (i, w) in words[..n].iter_mut().enumerate() {
            *w = be32(&stream[p + 12 + 4 * i..]);
        }
        frames.push(ModelFrame {
            at: p,
            cmd,
            time,
            words,
            n,
        });
        p += want;
    }
}

/// A decoded frame's command and payload words, field by field in wire order.
fn words_of(f: &Frame) -> (u16, Vec<u32>) {
    let v = match *f {
        Frame::LoginRequest { user } | Frame::ShakeRequest { user } => vec![user],
        Frame::LoginResponse { user, result } => vec![user, result],
        Frame::GrabRequest { user, packet } => vec![user, packet],
        Frame::GrabResponse { packet, amount } => vec![packet, amount],
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
        } => vec![user, result, packet, amount],
        Frame::SendNotification {
            packet,
            amount,
            shares,
            users,
        } => vec![packet, amount, shares, users[0], users[1], users[2]],
        Frame::SendRequest {
            user,
            amount,
            count,
            users,
        } => vec![user, amount, count, users[0], users[1], users[2]],
    };
    (f.command(), v)
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Frames put in streams (valid ones, and the bad one that ends a stream).
    pub frames: u64,
    /// Frames the decoder accepted (each checked against the model).
    pub accepted: u64,
    pub streams: u64,
    pub bytes: u64,
    /// Reads fed to the decoder.
    pub reads: u64,
    /// Streams refused, by kind.
    pub bad_length: u64,
    pub unknown_command: u64,
    pub length_mismatch: u64,
    /// Streams that stopped inside a frame (the rest carried, no error).
    pub cut: u64,
}

fn word(rng: &mut SmallRng) -> u32 {
    match rng.random_range(0..8) {
        0 => 0,
        1 => u32::MAX,
        2 => rng.random_range(0..4),
        _ => rng.random(),
    }
}

fn push_frame(rng: &mut SmallRng, out: &mut Vec<u8>, len: u16, cmd: u16) {
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&cmd.to_be_bytes());
    let time: u64 = if rng.random_bool(0.5) {
        rng.random()
    } else {
        rng.random_range(1_700_000_000..1_800_000_000)
    };
    out.extend_from_slice(&time.to_be_bytes());
    for _ in 0..(usize::from(len).saturating_sub(12) / 4) {
        out.extend_from_slice(&word(rng).to_be_bytes());
    }
}

/// Builds one stream into `out`; returns how many frames it holds.
fn build_stream(rng: &mut SmallRng, out: &mut Vec<u8>, max_frames: u64) -> u64 {
    out.clear();
    let valid = rng.random_range(0..=max_frames.clamp(1, 3000));
    for _ in 0..valid {
        let (cmd, len) = TABLE[rng.random_range(0..TABLE.len())];
        push_frame(rng, out, len as u16, cmd);
    }
    let mut frames = valid;
    match rng.random_range(0..8) {
        // A clean end.
        0 | 1 => {}
        // A frame cut short.
        2 => {
            let (cmd, len) = TABLE[rng.random_range(0..TABLE.len())];
            let start = out.len();
            push_frame(rng, out, len as u16, cmd);
            out.truncate(start + rng.random_range(1..len));
            frames += 1;
        }
        // A length out of range.
        3 => {
            let len = if rng.random_bool(0.5) {
                rng.random_range(0..12)
            } else {
                rng.random_range(45..=u16::MAX)
            };
            let cmd = TABLE[rng.random_range(0..TABLE.len())].0;
            let start = out.len();
            push_frame(rng, out, 16, cmd);
            out[start..start + 2].copy_from_slice(&len.to_be_bytes());
            frames += 1;
        }
        // An unknown command.
        4 => {
            let cmd = loop {
                let c = if rng.random_bool(0.5) {
                    rng.random_range(9..32)
                } else {
                    rng.random()
                };
                if !TABLE.iter().any(|t| t.0 == c) {
                    break c;
                }
            };
            let len = rng.random_range(12..=44);
            push_frame(rng, out, len, cmd);
            frames += 1;
        }
        // A known command with another length in range.
        5 => {
            let (cmd, want) = TABLE[rng.random_range(0..TABLE.len())];
            let len = loop {
                let l = rng.random_range(12..=44u16);
                if usize::from(l) != want {
                    break l;
                }
            };
            push_frame(rng, out, len, cmd);
            frames += 1;
        }
        // Garbage: whatever the model makes of it.
        _ => {
            let n = rng.random_range(1..=2 * MAX_FRAME_LEN);
            out.extend((0..n).map(|_| rng.random::<u8>()));
            frames += 1;
        }
    }
    frames
}

/// Feeds `stream` to the decoder in random reads and checks every step against the
/// model's verdict; the error says where they first disagree.
fn check_stream(
    rng: &mut SmallRng,
    stream: &[u8],
    expect: &[ModelFrame],
    end: ModelEnd,
    report: &mut Report,
) -> Result<(), String> {
    let mut partial = Partial::default();
    let mut buf = [0u8; READ + MAX_FRAME_LEN];
    let mut fed = 0;
    let mut next = 0;
    let mut bad: Option<String> = None;
    while fed < stream.len() {
        let room = buf.len() - partial.len();
        let want = match rng.random_range(0..4) {
            0 => 1,
            1 => rng.random_range(1..=MAX_FRAME_LEN),
            2 => rng.random_range(1..=READ),
            _ => room,
        };
        let n = want.min(room).min(stream.len() - fed);
        let carried = partial.restore(&mut buf);
        buf[carried..carried + n].copy_from_slice(&stream[fed..fed + n]);
        let before = fed;
        fed += n;
        report.reads += 1;
        let got = protocol::decode_stream(&buf[..carried + n], &mut partial, |d: Decoded| {
            let ok = match expect.get(next) {
                Some(m) => {
                    let (cmd, words) = words_of(&d.frame);
                    cmd == m.cmd
                        && d.time == m.time
                        && d.len == 12 + 4 * m.n
                        && words == m.words[..m.n]
                }
                None => false,
            };
            if !ok && bad.is_none() {
                bad = Some(format!(
                    "frame {next} decoded as {:?} (time {}, {} bytes), model has {:?}",
                    d.frame,
                    d.time,
                    d.len,
                    expect.get(next)
                ));
            }
            next += 1;
            report.accepted += 1;
            ok
        });
        if let Some(b) = bad {
            return Err(b);
        }
        if let Err(e) = got {
            return match end {
                ModelEnd::Refused { decided_at, error }
                    if error == e && before < decided_at && decided_at <= fed && next == expect.len() =>
                {
                    match e {
                        FrameError::BadLength { .. } => report.bad_length += 1,
                        FrameError::UnknownCommand { .. } => report.unknown_command += 1,
                        FrameError::LengthMismatch { .. } => report.length_mismatch += 1,
                    }
                    Ok(())
                }
                _ => Err(format!(
                    "refused with {e:?} after {fed} bytes ({next} frames); model: {end:?}, {} frames",
                    expect.len()
                )),
            };
        }
        if let ModelEnd::Refused { decided_at, .. } = end {
            if decided_at <= fed {
                return Err(format!(
                    "{fed} bytes fed and not refused; model: {end:?} (a bad frame accepted)"
                ));
            }
        }
    }
    match end {
        ModelEnd::Open { tail } if next == expect.len() && partial.len() == stream.len() - tail => {
            if !partial.is_empty() {
                report.cut += 1;
            }
            Ok(())
        }
        _ => Err(format!(
            "stream of {} bytes ended with {next} frames and {} bytes carried; model: {end:?}, {} frames",
            stream.len(),
            partial.len(),
            expect.len()
        )),
    }
}

/// Runs streams until at least `frames` frames went through; the first disagreement
/// with the model is an error naming the seed and the stream.
pub fn run(seed: u64, frames: u64) -> Result<Report, String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut report = Report::default();
    let mut stream = Vec::new();
    let mut expect = Vec::new();
    while report.frames < frames {
        let n = build_stream(&mut rng, &mut stream, frames - report.frames);
        let end = model(&stream, &mut expect);
        check_stream(&mut rng, &stream, &expect, end, &mut report)
            .map_err(|e| format!("seed {seed}, stream {}: {e}", report.streams))?;
        report.frames += n;
        report.streams += 1;
        report.bytes += stream.len() as u64;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_hundred_thousand_random_frames_agree_with_the_model() {
        let seed = rand::random();
        let r = run(seed, 300_000).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.frames >= 300_000 && r.accepted > 200_000, "{r:?}");
        // Every ending was met, so each path of the decoder was taken.
        assert!(
            r.bad_length > 0 && r.unknown_command > 0 && r.length_mismatch > 0 && r.cut > 0,
            "{r:?}"
        );
    }

    #[test]
    fn the_model_refuses_what_the_table_forbids() {
        let mut f = Vec::new();
        let login = Frame::LoginRequest { user: 1 }.encode(2);
        assert_eq!(model(login.as_bytes(), &mut f), ModelEnd::Open { tail: 16 });
        assert_eq!(f[0].words[0], 1);
        assert_eq!(
            model(&[0, 45], &mut f),
            ModelEnd::Refused {
                decided_at: 2,
                error: FrameError::BadLength { len: 45 }
            }
        );
        assert_eq!(
            model(&[0, 16, 0, 9], &mut f),
            ModelEnd::Refused {
                decided_at: 4,
                error: FrameError::UnknownCommand { cmd: 9 }
            }
        );
    }

    #[test]
    fn a_decoder_that_accepts_a_bad_frame_is_caught() {
        // The check itself must be able to fail: a stream the model refuses, paired
        // with a model verdict that says otherwise, is reported.
        let mut rng = SmallRng::seed_from_u64(1);
        let bytes = [0u8, 45, 0, 0];
        let mut r = Report::default();
        assert!(check_stream(&mut rng, &bytes, &[], ModelEnd::Open { tail: 0 }, &mut r).is_err());
        let login = Frame::LoginRequest { user: 1 }.encode(2);
        let wrong = ModelFrame {
            at: 0,
            cmd: 0,
            time: 2,
            words: [9, 0, 0, 0, 0, 0, 0, 0],
            n: 1,
        };
        let end = ModelEnd::Open { tail: 16 };
        assert!(check_stream(&mut rng, login.as_bytes(), &[wrong], end, &mut r).is_err());
    }
}
