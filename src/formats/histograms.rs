//! `histograms.json`: each load generator's whole-phase latency histograms, so the
//! report can add every host's and read exact fleet-wide percentiles.
//!
//! Percentiles do not add up: the p99 of two hosts is not any function of their two
//! p99s. Histograms do: added bucket by bucket, the sum is the histogram of every value
//! either host recorded, and its percentiles are exact (to the histogram's 3
//! significant figures, as on one host). Each phase's histogram is stored in
//! HdrHistogram's own serialised form, "V2 compressed" (the V2 encoding, deflated,
//! base64; the form HdrHistogram's interval logs use, readable by its tools in any
//! language). The `--procs` children send theirs to the parent in the same form.
//!
//! ```json
//! {"schema": 1, "unit": "us", "encoding": "hdrhistogram-v2-deflate-base64",
//!  "phases": [{"name": "30k", "start": 1764160020.0, "end": 1764160080.0,
//!              "count": 1800000, "hdr": "HISTFAAAA..."}]}
//! ```

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The file's name in a load generator's host folder.
pub const FILE: &str = "histograms.json";
/// The value of [`HistogramsFile::encoding`].
pub const ENCODING: &str = "hdrhistogram-v2-deflate-base64";
/// Highest latency the histograms keep exactly, microseconds (longer values saturate).
pub const MAX_LATENCY_US: u64 = 600_000_000;
/// Significant figures every latency histogram keeps.
pub const SIGFIG: u8 = 3;

/// A latency histogram: microseconds, 3 significant figures from 1 us to 10 minutes.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGFIG)
        .expect("static histogram bounds are valid")
}

/// `histograms.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistogramsFile {
    pub schema: u32,
    /// What the histograms' values count: `us` (microseconds).
    pub unit: String,
    /// [`ENCODING`].
    pub encoding: String,
    pub phases: Vec<PhaseHistogram>,
}

/// One phase's latency histogram.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhaseHistogram {
    pub name: String,
    /// Unix seconds: when the phase really began and ended on this host.
    pub start: f64,
    pub end: f64,
    /// Values recorded (answered shakes); a check on the decoded histogram.
    pub count: u64,
    /// The histogram, [`ENCODING`].
    pub hdr: String,
}

impl HistogramsFile {
    pub fn new(phases: Vec<PhaseHistogram>) -> HistogramsFile {
        HistogramsFile {
            schema: super::SCHEMA,
            unit: "us".into(),
            encoding: ENCODING.into(),
            phases,
        }
    }

    pub fn phase(&self, name: &str) -> Option<&PhaseHistogram> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Whether this reader understands the file's values.
    pub fn check(&self) -> Result<(), String> {
        if self.unit != "us" {
            return Err(format!("unit {:?}, expected \"us\"", self.unit));
        }
        if self.encoding != ENCODING {
            return Err(format!(
                "encoding {:?}, expected {ENCODING:?}",
                self.encoding
            ));
        }
        Ok(())
    }
}

impl PhaseHistogram {
    pub fn new(
        name: &str,
        start: f64,
        end: f64,
        h: &Histogram<u64>,
    ) -> Result<PhaseHistogram, String> {
        Ok(PhaseHistogram {
            name: name.to_string(),
            start,
            end,
            count: h.len(),
            hdr: encode(h)?,
        })
    }

    /// The decoded histogram, checked against `count`.
    pub fn histogram(&self) -> Result<Histogram<u64>, String> {
        let h = decode(&self.hdr)?;
        if h.len() != self.count {
            return Err(format!(
                "phase {}: the histogram holds {} values, the file says {}",
                self.name,
                h.len(),
                self.count
            ));
        }
        Ok(h)
    }
}

/// A histogram in [`ENCODING`].
pub fn encode(h: &Histogram<u64>) -> Result<String, String> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| format!("cannot serialise a histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// Reads [`ENCODING`] (plain V2, without deflate, is accepted too).
pub fn decode(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("not an HdrHistogram V2 histogram: {e}"))
}

/// The sum of histograms: the histogram of every value any of them recorded. It grows to
/// hold the largest value of any addend, so histograms of other bounds add too.
pub fn merge<'a>(hs: impl IntoIterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut out = new_latency_histogram();
    out.auto(true);
    for h in hs {
        out.add(h)
            .expect("an auto-resizing histogram takes any addend");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_input() {
        let mut h = new_latency_histogram();
        for v in [1u64, 250, 1_000, 12_345, 599_999_999] {
            h.record(v).unwrap();
        }
        let p = PhaseHistogram::new("a", 1.0, 2.0, &h).unwrap();
        assert!(p.hdr.starts_with("HISTF"), "{}", &p.hdr[..8]);
        let back = p.histogram().unwrap();
        assert_eq!(back, h);
        let mut wrong = p.clone();
        wrong.count += 1;
        assert!(wrong.histogram().unwrap_err().contains("holds 5 values"));
        assert!(decode("!!").unwrap_err().contains("base64"));
        assert!(decode("aGVsbG8gd29ybGQ=").unwrap_err().contains("V2"));
        let f = HistogramsFile::new(vec![p]);
        assert!(f.check().is_ok());
        let f: HistogramsFile = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(f.phase("a").unwrap().count, 5);
        assert!(HistogramsFile::default().check().is_err());
    }

    #[test]
    fn merged_percentiles_are_those_of_all_values_together() {
        // Two hosts with different distributions: one fast, one with a slow tail.
        let (mut a, mut b, mut all) = (
            new_latency_histogram(),
            new_latency_histogram(),
            new_latency_histogram(),
        );
        let mut x = 7u64;
        for i in 0..200_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let fast = 100 + (x >> 40) % 900;
            let slow = if i % 50 == 0 {
                50_000 + (x >> 20) % 200_000
            } else {
                800 + (x >> 44) % 4_000
            };
            a.record(fast).unwrap();
            all.record(fast).unwrap();
            if i % 2 == 0 {
                b.record(slow).unwrap();
                all.record(slow).unwrap();
            }
        }
        let m = merge([
            &decode(&encode(&a).unwrap()).unwrap(),
            &decode(&encode(&b).unwrap()).unwrap(),
        ]);
        assert_eq!(m.len(), all.len());
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(m.value_at_quantile(q), all.value_at_quantile(q), "q {q}");
        }
        assert_eq!(m.max(), all.max());
        // The worst host per percentile is not the merged figure.
        assert_ne!(
            a.value_at_quantile(0.5).max(b.value_at_quantile(0.5)),
            m.value_at_quantile(0.5)
        );
    }
}
