//! The long randomised run of the codec and the server's frame handling
//! (`redpacket_protocol::framefuzz`): random valid and invalid frames, split at random read
//! boundaries, checked against the reference model.
//!
//! `cargo run --release -p redpacket-protocol --features fuzz --example frame_fuzz -- [FRAMES] [SEED]`: FRAMES defaults to
//! 100 000 000, SEED to a random one (printed, so a failure can be replayed). Exit 0
//! when every stream agreed with the model, 1 at the first disagreement, 2 bad usage.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| -> u64 {
        match args.get(i).map(|a| a.replace('_', "").parse::<u64>()) {
            None => default,
            Some(Ok(v)) => v,
            Some(Err(_)) => {
                eprintln!("usage: frame_fuzz [FRAMES] [SEED]");
                std::process::exit(2);
            }
        }
    };
    if args.len() > 2 {
        eprintln!("usage: frame_fuzz [FRAMES] [SEED]");
        std::process::exit(2);
    }
    let frames = num(0, 100_000_000);
    let seed = num(1, rand::random());
    println!("frame_fuzz: {frames} frames, seed {seed}");
    let t = Instant::now();
    match redpacket_protocol::framefuzz::run(seed, frames) {
        Ok(r) => {
            let secs = t.elapsed().as_secs_f64();
            println!(
                "ok: {} frames ({} accepted, each equal to the model's) in {} streams, {:.2} GB \
                 in {} reads; refused as the model said: {} bad length, {} unknown command, \
                 {} length mismatch; {} streams cut inside a frame carried their tail; {secs:.0} s",
                r.frames,
                r.accepted,
                r.streams,
                r.bytes as f64 / 1e9,
                r.reads,
                r.bad_length,
                r.unknown_command,
                r.length_mismatch,
                r.cut
            );
        }
        Err(e) => {
            eprintln!("DISAGREEMENT: {e}");
            std::process::exit(1);
        }
    }
}
