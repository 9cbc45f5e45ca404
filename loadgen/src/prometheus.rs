//! The Prometheus text exposition format, version 0.0.4: what `GET /metrics` on the
//! `--control` listener answers. Only the writing side, with no I/O and no state: the
//! `--control` handler decides which families there are ([`crate::run`]), this module
//! gets their names, HELP and TYPE lines, label escaping and numbers right.
//!
//! Latency is a histogram, not a summary: percentiles of two hosts do not add up,
//! histogram buckets do. Every load generator, of every version, uses the one list of
//! bounds [`LATENCY_BUCKETS_S`], so `sum by (le)` over hosts and processes is the
//! histogram of the whole fleet. (A bound that differs between two processes would
//! make their buckets impossible to add: keep the list fixed.)
//!
//! Small enough to write by hand; a client library would bring a registry and a
//! global state we do not need.

use hdrhistogram::Histogram;
use std::fmt::Write;

/// The `Content-Type` of an answer in this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histogram's buckets, seconds: 100 us to 10 s, 1-2-5 per
/// decade, then `+Inf`. Fixed for every process and host, so that buckets of the same
/// bound add up across them (see the module's header).
pub const LATENCY_BUCKETS_S: [f64; 16] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    10.0,
];

/// A cumulative latency histogram in [`LATENCY_BUCKETS_S`]: counts per bucket, their
/// number and the sum of the values. Adds up across seconds, processes and hosts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets {
    /// Values in each bucket alone (not cumulative); the last is above the last bound.
    per_bucket: [u64; LATENCY_BUCKETS_S.len() + 1],
    /// Sum of the values, microseconds: whole numbers add up exactly, in any order.
    sum_us: u64,
}

impl Buckets {
    /// Adds one value, seconds (kept to the microsecond in the sum).
    pub fn observe(&mut self, s: f64) {
        self.per_bucket[bucket_of(s)] += 1;
        self.sum_us += (s * 1e6).round() as u64;
    }

    /// Adds every value of an HdrHistogram of microseconds. Each bucket of the
    /// HdrHistogram goes whole into the bucket of its lowest value, and counts its
    /// middle value in the sum: exact to the HdrHistogram's 3 significant figures.
    pub fn add_us_histogram(&mut self, h: &Histogram<u64>) {
        for v in h.iter_recorded() {
            let us = v.value_iterated_to();
            let n = v.count_at_value();
            let low = h.lowest_equivalent(us) as f64 / 1e6;
            self.per_bucket[bucket_of(low)] += n;
            self.sum_us += h.median_equivalent(us).saturating_mul(n);
        }
    }

    /// Adds another histogram's buckets (another second's, process's or host's).
    pub fn add(&mut self, o: &Buckets) {
        for (a, b) in self.per_bucket.iter_mut().zip(o.per_bucket) {
            *a += b;
        }
        self.sum_us += o.sum_us;
    }

    /// How many values.
    pub fn count(&self) -> u64 {
        self.per_bucket.iter().sum()
    }

    /// Sum of the values, seconds.
    pub fn sum_s(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// (bound, values at or below it) for every bound, `+Inf` last.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut below = 0;
        LATENCY_BUCKETS_S
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.per_bucket)
            .map(|(le, n)| {
                below += n;
                (le, below)
            })
            .collect()
    }
}

/// The index of the bucket of a value, seconds: the first bound at or above it.
fn bucket_of(s: f64) -> usize {
    LATENCY_BUCKETS_S
        .iter()
        .position(|le| s <= *le)
        .unwrap_or(LATENCY_BUCKETS_S.len())
}

/// An exposition being written: families one after the other, each with its HELP and
/// TYPE lines before its samples.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// The text, to answer with [`CONTENT_TYPE`].
    pub fn finish(self) -> String {
        self.out
    }

    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.head(name, "counter", help);
        self.sample(name, &[], &value.to_string());
    }

    /// A counter with one label, a sample per value of it.
    pub fn counter_by(&mut self, name: &str, help: &str, label: &str, samples: &[(&str, u64)]) {
        self.head(name, "counter", help);
        for (v, n) in samples {
            self.sample(name, &[(label, v)], &n.to_string());
        }
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.head(name, "gauge", help);
        self.sample(name, &[], &number(value));
    }

    /// A gauge with one label, a sample per value of it.
    pub fn gauge_by(&mut self, name: &str, help: &str, label: &str, samples: &[(&str, f64)]) {
        self.head(name, "gauge", help);
        for (v, x) in samples {
            self.sample(name, &[(label, v)], &number(*x));
        }
    }

    /// A histogram: `name_bucket{le=...}` for every bound and `+Inf`, `name_sum`,
    /// `name_count`.
    pub fn histogram(&mut self, name: &str, help: &str, b: &Buckets) {
        self.head(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (le, n) in b.cumulative() {
            self.sample(&bucket, &[("le", &number(le))], &n.to_string());
        }
        self.sample(&format!("{name}_sum"), &[], &number(b.sum_s()));
        self.sample(&format!("{name}_count"), &[], &b.count().to_string());
    }

    fn head(&mut self, name: &str, kind: &str, help: &str) {
        debug_assert!(valid_name(name), "{name}");
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(valid_name(k) && !k.contains(':'), "{k}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A number as the format writes it: `+Inf`, `-Inf`, `NaN`, else the shortest decimal
/// that reads back to the same value.
pub fn number(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        x.to_string()
    }
}

/// A metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// One sample line read back: name, labels (unescaped), value.
    pub type Sample = (String, BTreeMap<String, String>, f64);

    /// Reads an exposition back, strictly: every line is a HELP, a TYPE (after its
    /// HELP, before its samples) or a sample `name{labels} value` of the family just
    /// declared. Panics with the line otherwise.
    pub fn parse(text: &str) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut family = String::new();
        let mut kind = String::new();
        let mut seen = std::collections::HashSet::new();
        assert!(text.ends_with('\n'), "no line feed at the end");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, _) = rest.split_once(' ').expect(line);
                assert!(valid_name(name), "{line}");
                assert!(seen.insert(name.to_string()), "family twice: {line}");
                family = name.to_string();
                kind.clear();
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, k) = rest.split_once(' ').expect(line);
                assert_eq!(name, family, "TYPE without its HELP: {line}");
                assert!(["counter", "gauge", "histogram"].contains(&k), "{line}");
                kind = k.to_string();
                continue;
            }
            assert!(!kind.is_empty(), "sample before its TYPE: {line}");
            let (name, labels, value) = parse_sample(line);
            let ok = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{family}{s}")),
                "counter" => name == family && family.ends_with("_total"),
                _ => name == family,
            };
            assert!(ok, "{name} in family {family} ({kind})");
            out.push((name, labels, value));
        }
        out
    }

    fn parse_sample(line: &str) -> Sample {
        let name_end = line.find(['{', ' ']).expect(line);
        let name = &line[..name_end];
        assert!(valid_name(name), "{line}");
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(mut r) = rest.strip_prefix('{') {
            // `key="value"` pairs, separated by commas, up to the closing brace.
            loop {
                let eq = r.find('=').expect(line);
                let key = &r[..eq];
                assert!(valid_name(key) && !key.contains(':'), "{line}");
                let body = r[eq + 1..].strip_prefix('"').expect(line);
                let mut value = String::new();
                let mut it = body.char_indices();
                let end = loop {
                    let (i, c) = it.next().expect(line);
                    match c {
                        '"' => break i + 1,
                        '\\' => value.push(match it.next().expect(line).1 {
                            'n' => '\n',
                            '\\' => '\\',
                            '"' => '"',
                            _ => panic!("bad escape in {line}"),
                        }),
                        c => value.push(c),
                    }
                };
                assert!(labels.insert(key.to_string(), value).is_none(), "{line}");
                let after = &body[end..];
                if let Some(more) = after.strip_prefix(',') {
                    r = more;
                } else {
                    rest = after.strip_prefix('}').expect(line);
                    break;
                }
            }
        }
        let value = rest.strip_prefix(' ').expect(line);
        assert!(!value.contains(' '), "a timestamp or more: {line}");
        (name.to_string(), labels, parse_value(line, value))
    }

    fn parse_value(line: &str, v: &str) -> f64 {
        match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            _ => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
        }
    }

    /// The `le` label and value of every `name_bucket` sample, in order.
    pub fn buckets(samples: &[Sample], name: &str) -> Vec<(String, f64)> {
        samples
            .iter()
            .filter(|(n, _, _)| *n == format!("{name}_bucket"))
            .map(|(_, l, v)| (l["le"].clone(), *v))
            .collect()
    }

    /// The value of the one sample `name` (without labels).
    pub fn value(samples: &[Sample], name: &str) -> f64 {
        let v: Vec<f64> = samples
            .iter()
            .filter(|(n, l, _)| n == name && l.is_empty())
            .map(|s| s.2)
            .collect();
        assert_eq!(v.len(), 1, "{name}: {v:?}");
        v[0]
    }

    /// Checks a histogram as read back: one bucket per bound and `+Inf`, cumulative,
    /// `_count` equal to the `+Inf` bucket.
    pub fn check_histogram(samples: &[Sample], name: &str) {
        let b = buckets(samples, name);
        let les: Vec<String> = LATENCY_BUCKETS_S
            .iter()
            .map(|x| number(*x))
            .chain(["+Inf".to_string()])
            .collect();
        assert_eq!(b.iter().map(|x| x.0.clone()).collect::<Vec<_>>(), les);
        assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "{b:?}");
        assert_eq!(value(samples, &format!("{name}_count")), b[b.len() - 1].1);
        assert!(value(samples, &format!("{name}_sum")) >= 0.0);
    }

    fn host(values_s: &[f64]) -> (Buckets, String) {
        let mut b = Buckets::default();
        for v in values_s {
            b.observe(*v);
        }
        let mut e = Exposition::new();
        e.counter_by(
            "redpacket_test_requests_total",
            "Requests.",
            "kind",
            &[("a", 1), ("b\"\\\nc", 2)],
        );
        e.gauge("redpacket_test_level", "A level\nwith \\ two lines.", 2.5);
        e.gauge_by("redpacket_test_info", "Info.", "phase", &[("x y", 1.0)]);
        e.counter("redpacket_test_plain_total", "Plain.", 7);
        e.histogram("redpacket_test_seconds", "Latency.", &b);
        (b, e.finish())
    }

    #[test]
    fn every_line_reads_back_and_labels_are_escaped() {
        let (_, text) = host(&[0.00005, 0.0001, 0.0003, 0.7, 11.0]);
        assert!(text.contains("# HELP redpacket_test_level A level\\nwith \\\\ two lines.\n"));
        let s = parse(&text);
        let kinds: Vec<&str> = s
            .iter()
            .filter(|x| x.0 == "redpacket_test_requests_total")
            .map(|x| x.1["kind"].as_str())
            .collect();
        assert_eq!(kinds, ["a", "b\"\\\nc"]);
        assert_eq!(value(&s, "redpacket_test_level"), 2.5);
        assert_eq!(value(&s, "redpacket_test_plain_total"), 7.0);
        check_histogram(&s, "redpacket_test_seconds");
        let b = buckets(&s, "redpacket_test_seconds");
        // 0.1 ms is in its own bound's bucket ("le" is "less or equal").
        assert_eq!(b[0], ("0.0001".to_string(), 2.0));
        assert_eq!(b[2], ("0.0005".to_string(), 3.0));
        assert_eq!(b[15], ("10".to_string(), 4.0));
        assert_eq!(b[16], ("+Inf".to_string(), 5.0));
        let sum = value(&s, "redpacket_test_seconds_sum");
        assert!((sum - 11.70045).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn two_hosts_buckets_add_up_to_the_histogram_of_both() {
        let a = [0.00003, 0.0015, 0.0015, 0.04, 3.0];
        let b = [0.0002, 0.0019, 0.5, 20.0];
        let (mut ba, text_a) = host(&a);
        let (bb, text_b) = host(&b);
        let both: Vec<f64> = a.iter().chain(b.iter()).copied().collect();
        let (bboth, text_both) = host(&both);
        // Sums too: kept in whole microseconds, they add exactly.
        ba.add(&bb);
        assert_eq!(ba, bboth);
        let (sa, sb, sboth) = (parse(&text_a), parse(&text_b), parse(&text_both));
        let name = "redpacket_test_seconds";
        let added: Vec<(String, f64)> = buckets(&sa, name)
            .into_iter()
            .zip(buckets(&sb, name))
            .map(|((le, x), (le2, y))| {
                assert_eq!(le, le2);
                (le, x + y)
            })
            .collect();
        assert_eq!(added, buckets(&sboth, name));
        let count = |s: &[Sample]| value(s, &format!("{name}_count"));
        assert_eq!(count(&sa) + count(&sb), count(&sboth));
    }

    #[test]
    fn an_hdr_histogram_fills_the_buckets() {
        let mut h = redpacket_formats::histograms::new_latency_histogram();
        for us in [50, 100, 101, 1_000, 250_000, 30_000_000] {
            h.record(us).unwrap();
        }
        let mut b = Buckets::default();
        b.add_us_histogram(&h);
        let c = b.cumulative();
        assert_eq!(c[0], (0.0001, 2));
        assert_eq!(c[1], (0.0002, 3));
        assert_eq!(c[3], (0.001, 4));
        assert_eq!(c[11], (0.5, 5));
        assert_eq!(c[16], (f64::INFINITY, 6));
        assert_eq!(b.count(), 6);
        let exact = 30.251251;
        assert!((b.sum_s() - exact).abs() < exact * 1e-3, "{}", b.sum_s());
        let mut twice = b.clone();
        twice.add(&b);
        assert_eq!(twice.count(), 12);
    }

    #[test]
    fn numbers_and_names() {
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(0.0001), "0.0001");
        assert_eq!(number(10.0), "10");
        assert_eq!(number(f64::NAN), "NaN");
        assert!(valid_name("redpacket_loadgen_x_total") && valid_name("a:b_1"));
        assert!(!valid_name("1a") && !valid_name("a-b") && !valid_name(""));
    }
}
