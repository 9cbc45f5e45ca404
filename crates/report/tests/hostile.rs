//! The report over run folders a hostile host could leave: links out of the folder,
//! FIFOs, files and histograms that claim gigabytes, figures no run produces, markup in
//! names. Each case checks that nothing outside the folder was written or read, that
//! the problem is named in report.md, that the verdict is not PASSED, and for the bombs
//! the report process's peak RSS (its own `wait4` rusage) and time.

#[path = "fixtures/run.rs"]
mod fixture;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use fixture::{edit_json, passed, report_bin, temp_dir, write_run};

/// Peak RSS any hostile case may cost the report process. A clean fixture run takes
/// about a tenth of it; without the caps each bomb here costs gigabytes.
const RSS_BOUND_MIB: f64 = 200.0;

/// How a report process ended.
struct Ran {
    code: i32,
    rss_mib: f64,
    /// CPU seconds (user + system) the process used: unlike the wall clock, not
    /// stretched by other work on a shared machine.
    cpu_s: f64,
}

/// A time limit the wall clock can only reach by waiting (a FIFO that blocks), not by
/// working: a clean fixture report takes a few CPU seconds in a debug build, but a
/// busy shared machine can stretch that many times over.
const WALL_LIMIT: Duration = Duration::from_secs(180);

/// Runs the report on `dir` as a child, waits for it with `wait4` (its own peak RSS,
/// not any other test's child), and kills it after `timeout`.
// The child is reaped by `wait4` (for its own rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_report(dir: &Path, timeout: Duration) -> Ran {
    let start = Instant::now();
    let mut child = report_bin()
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for the kernel to fill.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own child, not yet reaped; the pointers are valid.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            assert!(libc::WIFEXITED(status), "the report died: status {status}");
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            return Ran {
                code: libc::WEXITSTATUS(status),
                rss_mib: ru.ru_maxrss as f64 / 1024.0,
                cpu_s: secs(ru.ru_utime) + secs(ru.ru_stime),
            };
        }
        assert_eq!(r, 0, "wait4: {}", std::io::Error::last_os_error());
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the report did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fixture run with a passed load generator, so only the hostile part can fail it.
fn run_dir(tag: &str) -> PathBuf {
    let dir = temp_dir(&format!("hostile-{tag}"));
    write_run(&dir, tag, 1.0);
    passed(&dir.join("client1"));
    dir
}

/// Reports on `dir` and returns report.md; the process exited 0.
fn report_md(dir: &Path) -> (String, Ran) {
    let ran = run_report(dir, WALL_LIMIT);
    assert_eq!(ran.code, 0, "the report failed on {}", dir.display());
    (fs::read_to_string(dir.join("report.md")).unwrap(), ran)
}

fn assert_not_passed(md: &str) {
    let verdict = md.lines().find(|l| l.contains("Verdict:")).unwrap();
    assert!(verdict.contains("Verdict: FAILED"), "{verdict}");
}

fn assert_bounded(ran: &Ran, what: &str) {
    eprintln!(
        "{what}: peak RSS {:.1} MiB, {:.2} CPU s",
        ran.rss_mib, ran.cpu_s
    );
    assert!(
        ran.rss_mib < RSS_BOUND_MIB,
        "{what}: {:.0} MiB",
        ran.rss_mib
    );
}

#[test]
fn a_clean_run_passes_within_the_bound() {
    let dir = run_dir("clean");
    let (md, ran) = report_md(&dir);
    assert!(md.contains("**Verdict: PASSED**"), "{md}");
    assert_bounded(&ran, "clean fixture");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn outputs_planted_as_links_are_replaced_not_written_through() {
    let dir = run_dir("out-links");
    let outside = temp_dir("hostile-out-links-outside");
    let victim = outside.join("victim.txt");
    fs::write(&victim, "keep me").unwrap();
    fs::create_dir(outside.join("folder")).unwrap();
    symlink(&victim, dir.join("report.html")).unwrap();
    symlink(&victim, dir.join("report.md")).unwrap();
    symlink(&victim, dir.join("report.json")).unwrap();
    symlink(outside.join("folder"), dir.join("charts")).unwrap();
    let (md, _) = report_md(&dir);
    assert!(md.starts_with("# Red packet run"));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    assert_eq!(fs::read_dir(outside.join("folder")).unwrap().count(), 0);
    for f in ["report.html", "report.md", "report.json", "charts"] {
        let t = fs::symlink_metadata(dir.join(f)).unwrap().file_type();
        assert!(!t.is_symlink(), "{f} is still a link");
    }
    assert_eq!(fs::read_dir(dir.join("charts")).unwrap().count(), 14);
    // A second report replaces the first's files the same way and leaves nothing else.
    report_md(&dir);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "charts",
            "client1",
            "report.html",
            "report.json",
            "report.md",
            "run.json",
            "server1"
        ]
    );
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn a_tuning_txt_linked_outside_is_not_read() {
    let dir = run_dir("tuning-link");
    let outside = temp_dir("hostile-tuning-outside");
    fs::write(outside.join("secret"), "api.key = SECRET-7f3a\n").unwrap();
    fs::remove_file(dir.join("client1/tuning.txt")).unwrap();
    symlink(outside.join("secret"), dir.join("client1/tuning.txt")).unwrap();
    let (md, _) = report_md(&dir);
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(!md.contains("SECRET") && !html.contains("SECRET"));
    assert!(
        md.contains("host client1: tuning.txt is a symbolic link: not followed"),
        "{md}"
    );
    assert_not_passed(&md);
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&outside).unwrap();
}

/// A folder outside the run that looks like a host, with a secret in its tuning.
fn outside_host(tag: &str) -> PathBuf {
    let outside = temp_dir(&format!("hostile-{tag}-outside"));
    fs::write(outside.join("tuning.txt"), "api.key = SECRET-7f3a\n").unwrap();
    fs::write(
        outside.join("loadgen.jsonl"),
        "{\"t\": 1764160001, \"sent\": 1}\n",
    )
    .unwrap();
    outside
}

#[test]
fn host_names_that_are_paths_are_skipped() {
    let dir = run_dir("names");
    let outside = outside_host("names");
    let relative = format!("../{}", outside.file_name().unwrap().to_str().unwrap());
    let absolute = outside.to_str().unwrap().to_string();
    edit_json(&dir.join("run.json"), |v| {
        let hosts = v["hosts"].as_array_mut().unwrap();
        hosts.push(serde_json::json!({"name": relative, "role": "loadgen"}));
        hosts.push(serde_json::json!(absolute));
        hosts.push(serde_json::json!(".."));
        v["failed_hosts"] = serde_json::json!({"a\nb": "newline"});
    });
    let (md, _) = report_md(&dir);
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(!md.contains("SECRET") && !html.contains("SECRET"));
    for name in [&relative, &absolute] {
        // A name is shown quoted and cut after 64 characters of its quoted form (a
        // checkout's path may be longer than that).
        let quoted = format!("{name:?}");
        let shown = match quoted.char_indices().nth(64) {
            Some((i, _)) => format!("{}...\"", &quoted[..i]),
            None => quoted,
        };
        assert!(
            md.contains(&format!(
                "host name {shown} holds a '/' (a path, not a name): not a folder of the run, \
                 skipped"
            )),
            "{name} in {md}"
        );
    }
    assert!(
        md.contains("host name \"..\" is a reference to a folder"),
        "{md}"
    );
    assert!(
        md.contains("host name \"a\\\\nb\" holds a control character"),
        "{md}"
    );
    assert_not_passed(&md);
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn a_host_folder_that_is_a_link_is_not_followed() {
    let dir = run_dir("host-link");
    let outside = outside_host("host-link");
    symlink(&outside, dir.join("client2")).unwrap();
    fs::remove_dir_all(dir.join("client1")).unwrap();
    symlink(&outside, dir.join("client1")).unwrap();
    symlink(&outside, dir.join("server1/instance-2")).unwrap();
    let (md, _) = report_md(&dir);
    assert!(
        md.contains("host server1: instance-2 is a symbolic link: not followed"),
        "{md}"
    );
    assert!(!md.contains("SECRET"), "{md}");
    assert!(
        md.contains("host client1: its folder is a symbolic link: not followed"),
        "{md}"
    );
    assert!(
        md.contains("\"client2\" in the run folder is a symbolic link: not followed"),
        "{md}"
    );
    assert_not_passed(&md);
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn a_fifo_or_a_device_does_not_block_the_report() {
    let dir = run_dir("fifo");
    let fifo = dir.join("client1/loadgen.jsonl");
    fs::remove_file(&fifo).unwrap();
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    fs::remove_file(dir.join("server1/net.jsonl")).unwrap();
    symlink("/dev/zero", dir.join("server1/net.jsonl")).unwrap();
    // Blocked on the FIFO, the report would never end: the wall limit catches it.
    let ran = run_report(&dir, WALL_LIMIT);
    assert_eq!(ran.code, 0);
    let md = fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("host client1: loadgen.jsonl is a FIFO, not a regular file: not read"),
        "{md}"
    );
    assert!(
        md.contains("host server1: net.jsonl is a symbolic link: not followed"),
        "{md}"
    );
    assert_not_passed(&md);
    assert_bounded(&ran, "FIFO and /dev/zero");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn oversized_and_sparse_files_are_capped() {
    let dir = run_dir("sparse");
    // 4 GiB of nothing: above the per-second cap, refused by its size alone.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("server1/net.jsonl"))
        .unwrap();
    f.set_len(4 << 30).unwrap();
    // 64 MiB of NULs after real lines: under the cap, one endless line, skipped
    // without being held.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("client1/loadgen.jsonl"))
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len + (64 << 20)).unwrap();
    let (md, ran) = report_md(&dir);
    assert!(
        md.contains(
            "host server1: net.jsonl is 4294967296 bytes, above the cap of 268435456 bytes \
             for this kind of file: not read"
        ),
        "{md}"
    );
    assert!(
        md.contains("host client1: loadgen.jsonl: 1 line(s) unreadable, first at line 204 (longer than 1048576 bytes)"),
        "{md}"
    );
    // The real lines before the endless one still count.
    assert!(md.contains("client sent QPS (mean)"), "{md}");
    assert_not_passed(&md);
    assert_bounded(&ran, "sparse files");
    fs::remove_dir_all(&dir).unwrap();
}

/// A V2 histogram header with any claims (40 bytes, no payload).
fn v2_header(payload: u32, sigfig: u32, low: u64, high: u64) -> Vec<u8> {
    let mut b = 0x1c84_9313u32.to_be_bytes().to_vec();
    for w in [payload, 0, sigfig] {
        b.extend(w.to_be_bytes());
    }
    b.extend(low.to_be_bytes());
    b.extend(high.to_be_bytes());
    b.extend(1.0f64.to_be_bytes());
    b
}

/// Bits written least significant first, as deflate packs them.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, v: u64, n: u32) {
        self.acc |= v << self.n;
        self.n += n;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code: its bits go most significant first.
    fn code(&mut self, code: u64, n: u32) {
        let rev = (0..n).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
        self.put(rev, n);
    }
}

/// A zlib stream that inflates to `header` and then `zeros` zero bytes: one fixed
/// Huffman block of a literal 0 and copies of 258 bytes at distance 1 (13 bits each),
/// so 512 MiB take 3.3 MB; built bit by bit, with no compressor to run over it.
fn zlib_bomb(header: &[u8], zeros: u64) -> Vec<u8> {
    let mut b = Bits::default();
    b.out.extend([0x78, 0x01]);
    b.put(1, 1); // last block
    b.put(1, 2); // fixed Huffman codes
    let literal = |b: &mut Bits, x: u8| match x {
        0..=143 => b.code(0x30 + u64::from(x), 8),
        _ => b.code(0x190 + u64::from(x) - 144, 9),
    };
    for &x in header {
        literal(&mut b, x);
    }
    literal(&mut b, 0);
    for _ in 0..zeros / 258 {
        b.code(0xc5, 8); // length 258 (code 285)
        b.code(0, 5); // distance 1
    }
    b.code(0, 7); // end of block
    b.put(0, 7);
    b.out.extend([0, 0, 0, 0]); // Adler-32, never reached
    b.out
}

fn write_histograms(host: &Path, hdr: &[u8]) {
    let hdr = base64::engine::general_purpose::STANDARD.encode(hdr);
    let phases: Vec<_> = ["30k", "60k", "peak"]
        .iter()
        .map(|name| serde_json::json!({"name": name, "count": 0, "hdr": hdr}))
        .collect();
    let f = serde_json::json!({"schema": 1, "unit": "us",
        "encoding": "hdrhistogram-v2-deflate-base64", "phases": phases});
    fs::write(host.join("histograms.json"), f.to_string()).unwrap();
}

#[test]
fn histogram_bombs_are_refused_before_they_allocate() {
    let deflated = |inner: Vec<u8>| {
        let mut b = 0x1c84_9314u32.to_be_bytes().to_vec();
        b.extend((inner.len() as u32).to_be_bytes());
        b.extend(inner);
        b
    };
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "payload",
            v2_header(u32::MAX, 3, 1, 600_000_000),
            "declares a payload of 4294967295 bytes but holds 0: refused",
        ),
        (
            "bounds",
            v2_header(0, 3, 1, i64::MAX as u64),
            "are beyond any latency histogram",
        ),
        (
            "deflate",
            deflated(zlib_bomb(
                &v2_header(u32::MAX, 3, 1, 600_000_000),
                512 << 20,
            )),
            "inflates past 1048576 bytes",
        ),
    ];
    for (tag, hdr, want) in cases {
        let dir = run_dir(&format!("hist-{tag}"));
        write_histograms(&dir.join("client1"), &hdr);
        let (md, ran) = report_md(&dir);
        assert!(
            md.contains("host client1: histograms.json is not usable") && md.contains(want),
            "{tag}: {md}"
        );
        assert_not_passed(&md);
        assert_bounded(&ran, &format!("histogram {tag}"));
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_run_json_with_100_000_hosts_takes_seconds() {
    let dir = run_dir("many-hosts");
    edit_json(&dir.join("run.json"), |v| {
        let hosts = v["hosts"].as_array_mut().unwrap();
        hosts.extend((0..100_000).map(|i| serde_json::json!(format!("h{i:06}"))));
    });
    let (md, ran) = report_md(&dir);
    assert!(md.contains("host h099999: no folder"), "{}", &md[..2000]);
    // Linear: about 7 CPU s in a debug build (3.6 s with 25 000 hosts, 13 s with
    // 200 000); the quadratic host list took over 130 s before it was stopped.
    assert!(ran.cpu_s < 30.0, "{} CPU s", ran.cpu_s);
    assert_bounded(&ran, "100 000 hosts");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_rate_of_1e308_fails_the_verdict_and_is_not_the_rate_held() {
    let dir = run_dir("rate");
    // peak held under the thresholds: the highest rate held, until it claims 1e308.
    edit_json(&dir.join("client1/summary.json"), |v| {
        v["phases"][3]["achieved_qps"] = serde_json::json!(1e308);
    });
    let (md, _) = report_md(&dir);
    assert!(
        md.contains("host client1: summary.json, phase peak: a rate of 1e308 shakes/s"),
        "{md}"
    );
    assert!(!md.contains("000000000000000000000"), "{md}");
    let held = md
        .lines()
        .find(|l| l.starts_with("highest rate held"))
        .unwrap();
    assert!(held.ends_with("shakes/s (phase 60k)  "), "{held}");
    assert_not_passed(&md);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn money_of_u64_max_on_both_sides_does_not_agree_into_a_pass() {
    let dir = run_dir("money");
    edit_json(&dir.join("server1/server-summary.json"), |v| {
        for k in ["issued_cents", "won_cents"] {
            v["stats"]["shake"][k] = serde_json::json!(u64::MAX);
        }
    });
    edit_json(&dir.join("client1/summary.json"), |v| {
        v["money"]["client_won_cents"] = serde_json::json!(u64::MAX);
    });
    let (md, _) = report_md(&dir);
    assert!(
        md.contains("host server1: server-summary.json: money above 10000000000000 cents"),
        "{md}"
    );
    assert!(
        md.contains("host client1: summary.json money above 10000000000000 cents"),
        "{md}"
    );
    assert_not_passed(&md);
    fs::remove_dir_all(&dir).unwrap();
}

/// The other figures no run produces, each under the caps the cases above pass: a
/// phase's counts beyond its length at the run's rate limit, a latency below zero, a
/// second of `loadgen.jsonl` and of `server.jsonl` far past the targets, a server that
/// paid out more than it issued, and load generators that saw more won than every
/// server issued (both well under the money cap). Each is named; the verdict fails.
#[test]
fn counts_rates_and_money_beyond_the_run_fail() {
    let dir = run_dir("beyond");
    edit_json(&dir.join("client1/summary.json"), |v| {
        v["phases"][1]["sent"] = serde_json::json!(1_000_000_000_000u64);
        v["phases"][2]["latency_ms"]["p99"] = serde_json::json!(-1.0);
        v["money"]["client_won_cents"] = serde_json::json!(1_000_000_000u64);
    });
    edit_json(&dir.join("server1/server-summary.json"), |v| {
        let issued = v["stats"]["shake"]["issued_cents"].as_u64().unwrap();
        v["stats"]["shake"]["won_cents"] = serde_json::json!(issued + 1);
    });
    // One second of each per-second file claims a billion shakes.
    let first_line = |path: &Path, f: &dyn Fn(&mut serde_json::Value)| {
        let text = fs::read_to_string(path).unwrap();
        let (first, rest) = text.split_once('\n').unwrap();
        let mut v: serde_json::Value = serde_json::from_str(first).unwrap();
        f(&mut v);
        fs::write(path, format!("{v}\n{rest}")).unwrap();
    };
    first_line(&dir.join("client1/loadgen.jsonl"), &|v| {
        v["sent"] = serde_json::json!(1_000_000_000u64);
    });
    first_line(&dir.join("server1/server.jsonl"), &|v| {
        v["per_second"]["requests"]["shake"] = serde_json::json!(1_000_000_000u64);
    });
    let (md, _) = report_md(&dir);
    for want in [
        "host client1: summary.json, phase 30k: counts above 540,000,000 (the limit of 9,000,000 shakes/s over 60 s)",
        "host client1: summary.json, phase 60k: a latency below zero",
        "host client1: loadgen.jsonl has 1 line(s) with a rate beyond anything this run could produce",
        "host server1: server.jsonl has 1 line(s) with a shake rate beyond anything this run",
        "host server1: server-summary.json: more money won or grabbed",
        "the load generators saw 1000000000 cents won",
    ] {
        assert!(md.contains(want), "{want} in {md}");
    }
    assert_not_passed(&md);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn phases_backwards_overlapping_or_repeated_fail() {
    let dir = run_dir("phases");
    edit_json(&dir.join("run.json"), |v| {
        let ps = v["phases"].as_array_mut().unwrap();
        let t0 = fixture::T0;
        ps[2]["start"] = serde_json::json!(t0 + 70.0); // 60k starts 10 s inside 30k
        ps[3]["end"] = serde_json::json!(t0 + 130.0); // peak ends 10 s before it starts
        let again = ps[1].clone();
        ps.push(again);
    });
    let (md, _) = report_md(&dir);
    for want in [
        "run.json: phase peak runs backwards: it ends 10.0 s before it starts",
        "run.json: phases 30k and 60k overlap by 10.0 s",
        "run.json: phase name 30k is used by 2 phases",
    ] {
        assert!(md.contains(want), "{want} in {md}");
    }
    assert_not_passed(&md);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn markup_in_a_phase_name_stays_text() {
    let dir = run_dir("markup");
    let evil = "<img src=x onerror=alert(1)>[link](http://x)";
    edit_json(&dir.join("run.json"), |v| {
        v["phases"][3]["name"] = serde_json::json!(evil);
        v["description"] = serde_json::json!("# not a heading `code`");
    });
    let (md, _) = report_md(&dir);
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    // Every `<` and `[` of the name is escaped: no tag, no link.
    let escaped = |m: &str| md.match_indices(m).all(|(i, _)| md[..i].ends_with('\\'));
    assert!(escaped("<img") && escaped("[link"), "{md}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        md.contains("\\<img src=x onerror=alert(1)\\>\\[link\\](http://x)"),
        "{md}"
    );
    assert!(md.contains("\n\\# not a heading \\`code\\`  \n"), "{md}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    fs::remove_dir_all(&dir).unwrap();
}

/// Per-second histograms in `loadgen.jsonl` go through the same checks: a bomb in every
/// line is refused at the inflate cap, the run's tries stop after a few, those seconds
/// keep the lines' own figures, and the verdict fails.
#[test]
fn per_second_histogram_bombs_are_refused_and_fail_the_verdict() {
    let dir = run_dir("second-bombs");
    let mut b = 0x1c84_9314u32.to_be_bytes().to_vec();
    let inner = zlib_bomb(&v2_header(u32::MAX, 3, 1, 600_000_000), 4 << 20);
    b.extend((inner.len() as u32).to_be_bytes());
    b.extend(inner);
    let bomb = base64::engine::general_purpose::STANDARD.encode(&b);
    let log = dir.join("client1/loadgen.jsonl");
    let text: String = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["latency_hist"] = serde_json::json!(bomb);
            v.to_string() + "\n"
        })
        .collect();
    fs::write(&log, text).unwrap();
    let (md, ran) = report_md(&dir);
    assert!(
        md.contains("per-second latency histogram(s) of loadgen.jsonl cannot be decoded"),
        "{md}"
    );
    assert_not_passed(&md);
    assert_bounded(&ran, "per-second histogram bombs");
    fs::remove_dir_all(&dir).unwrap();
}
