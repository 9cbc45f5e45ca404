//! CPU cost of one `net.jsonl` sample: `cargo run --release --example sysmon_cost -- [SAMPLES] [GAP_MS]`.
//!
//! Times [`Collector::sample`] with the calling thread's CPU clock (getrusage
//! RUSAGE_THREAD), excluding the gaps. The gap defaults to 210 ms because the CPU figures
//! come from readings at least 200 ms apart (closer ones are not re-read, which would make
//! a tight loop look cheaper than the sampler is at its one-second interval).

use redpacket_host::sampler::Collector;
use std::time::Duration;

fn thread_cpu_s() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let samples: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let gap = Duration::from_millis(args.next().and_then(|a| a.parse().ok()).unwrap_or(210));
    let t0 = thread_cpu_s();
    let mut c = Collector::new();
    println!("Collector::new: {:.0} us CPU", (thread_cpu_s() - t0) * 1e6);
    let mut cpu = 0.0;
    for _ in 0..samples {
        std::thread::sleep(gap);
        let t0 = thread_cpu_s();
        let line = c.sample();
        cpu += thread_cpu_s() - t0;
        std::hint::black_box(line);
    }
    println!(
        "{samples} samples, {:.0} us CPU per sample",
        cpu / f64::from(samples) * 1e6
    );
}
