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
//!
//! The file comes from a host the report does not trust, and HdrHistogram's reader
//! believes its header: it allocates the payload length the header declares and a
//! counts array as wide as the declared bounds, and inflates without limit. So
//! [`decode`] inflates itself, up to [`MAX_DECODED`] bytes, and checks the V2 header
//! (payload length against the bytes there, bounds, significant figures) before the
//! library allocates anything.

use std::borrow::Cow;
use std::io::Read;

use base64::Engine;
use flate2::read::ZlibDecoder;
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
/// Largest V2 histogram accepted once inflated, bytes. A histogram at [`SIGFIG`] from 1
/// us to [`MAX_HIGHEST_US`] has about 32 000 counts, at most 9 bytes each encoded; a
/// real one is a few KB. Inflating stops here, so a deflate bomb costs no more.
pub const MAX_DECODED: u64 = 1 << 20;
/// Highest "highest trackable value" accepted, us: a week, a thousand times what the
/// writer uses ([`MAX_LATENCY_US`]). With at most [`SIGFIG`] significant figures, a
/// histogram's counts array stays under 300 KB; a header asking for 2^63 allocates
/// gigabytes.
pub const MAX_HIGHEST_US: u64 = 7 * 86_400 * 1_000_000;

/// HdrHistogram's V2 cookies, plain and deflated.
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// The V2 header: cookie, payload length, normalizing offset, significant figures (4
/// bytes each), lowest and highest trackable value, integer-to-double ratio (8 each).
const V2_HEADER: usize = 40;

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

/// Reads [`ENCODING`] (plain V2, without deflate, is accepted too), refusing what would
/// cost more than a real histogram: see the module's header.
pub fn decode(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let v2 = plain_v2(&bytes)?;
    check_header(&v2)?;
    Deserializer::new()
        .deserialize(&mut &v2[..])
        .map_err(|e| format!("not an HdrHistogram V2 histogram: {e}"))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The plain V2 form: as it is, or inflated from the deflated form, at most
/// [`MAX_DECODED`] bytes.
fn plain_v2(bytes: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    match be32(bytes, 0) {
        Some(V2_COOKIE) => Ok(Cow::Borrowed(bytes)),
        Some(V2_COMPRESSED_COOKIE) => {
            let len = be32(bytes, 4).ok_or("the deflated histogram is cut short")? as usize;
            let deflated = &bytes[8..];
            let deflated = &deflated[..len.min(deflated.len())];
            let mut out = Vec::new();
            ZlibDecoder::new(deflated)
                .take(MAX_DECODED + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("the deflated histogram does not inflate: {e}"))?;
            if out.len() as u64 > MAX_DECODED {
                return Err(format!(
                    "the deflated histogram inflates past {MAX_DECODED} bytes (no real one \
                     comes near): refused"
                ));
            }
            Ok(Cow::Owned(out))
        }
        _ => Err("not an HdrHistogram V2 histogram (unknown cookie)".into()),
    }
}

/// The V2 header's claims, checked before HdrHistogram allocates by them.
fn check_header(v2: &[u8]) -> Result<(), String> {
    let cut = || "the V2 histogram is cut short".to_string();
    if be32(v2, 0) != Some(V2_COOKIE) {
        return Err("not an HdrHistogram V2 histogram (unknown inner cookie)".into());
    }
    let payload = be32(v2, 4).ok_or_else(cut)? as usize;
    let held = v2.len().saturating_sub(V2_HEADER);
    if v2.len() < V2_HEADER || payload > held {
        return Err(format!(
            "the histogram declares a payload of {payload} bytes but holds {held}: refused"
        ));
    }
    let sigfig = be32(v2, 12).ok_or_else(cut)?;
    let (low, high) = (be64(v2, 16).ok_or_else(cut)?, be64(v2, 24).ok_or_else(cut)?);
    if !(1..=u32::from(SIGFIG)).contains(&sigfig)
        || low == 0
        || high > MAX_HIGHEST_US
        || high < low.saturating_mul(2)
    {
        return Err(format!(
            "the histogram's bounds ({low} to {high} us at {sigfig} significant figures) \
             are beyond any latency histogram (1 to at most {MAX_HIGHEST_US} us, at most \
             {SIGFIG} figures): refused"
        ));
    }
    Ok(())
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

    /// A V2 header as HdrHistogram writes it, with any claims.
    fn header(payload: u32, sigfig: u32, low: u64, high: u64) -> Vec<u8> {
        let mut b = V2_COOKIE.to_be_bytes().to_vec();
        for w in [payload, 0, sigfig] {
            b.extend(w.to_be_bytes());
        }
        b.extend(low.to_be_bytes());
        b.extend(high.to_be_bytes());
        b.extend(1.0f64.to_be_bytes());
        b
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn headers_that_would_allocate_too_much_are_refused() {
        let huge_payload = decode(&b64(&header(u32::MAX, 3, 1, MAX_LATENCY_US))).unwrap_err();
        assert!(
            huge_payload.contains("declares a payload of 4294967295"),
            "{huge_payload}"
        );
        let wide = decode(&b64(&header(0, 3, 1, 1 << 62))).unwrap_err();
        assert!(wide.contains("bounds"), "{wide}");
        assert!(decode(&b64(&header(0, 5, 1, MAX_LATENCY_US)))
            .unwrap_err()
            .contains("bounds"));
        // Within the bounds, an empty histogram reads.
        assert_eq!(
            decode(&b64(&header(0, 3, 1, MAX_LATENCY_US)))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn a_deflate_bomb_stops_at_the_cap() {
        use flate2::{write::ZlibEncoder, Compression};
        use std::io::Write;
        let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
        z.write_all(&header(u32::MAX, 3, 1, MAX_LATENCY_US))
            .unwrap();
        for _ in 0..4 {
            z.write_all(&[0u8; 1 << 20]).unwrap();
        }
        let deflated = z.finish().unwrap();
        let mut b = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        b.extend((deflated.len() as u32).to_be_bytes());
        b.extend(deflated);
        let e = decode(&b64(&b)).unwrap_err();
        assert!(e.contains("inflates past"), "{e}");
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
