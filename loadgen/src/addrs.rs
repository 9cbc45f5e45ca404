//! Source addresses to connect from: `--source-addrs` as a list, ranges or CIDRs.
//!
//! One address gives at most the ephemeral port range (~28 k to ~64 k) of connections to
//! one server address; a list lets one client host go past that. Users are spread over
//! the addresses round-robin, and each socket binds with IP_BIND_ADDRESS_NO_PORT so the
//! kernel picks the port at connect time per 4-tuple, not per address.

use std::net::{IpAddr, Ipv4Addr};

/// The most addresses one flag may expand to.
pub const MAX_SOURCE_ADDRS: usize = 65_536;

/// Parses `A,B`, `A-B` (inclusive IPv4 range) and `A/N` (IPv4 CIDR: its host addresses,
/// network and broadcast excluded below /31), in any mix.
pub fn parse_source_addrs(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, n)) = part.split_once('/') {
            let a: Ipv4Addr = a.parse().map_err(|_| format!("bad CIDR {part:?}"))?;
            let n: u32 = n.parse().map_err(|_| format!("bad CIDR {part:?}"))?;
            if n > 32 {
                return Err(format!("bad CIDR {part:?}: prefix above 32"));
            }
            let mask = if n == 0 { 0 } else { u32::MAX << (32 - n) };
            let net = u32::from(a) & mask;
            let last = net | !mask;
            let (lo, hi) = if n >= 31 {
                (net, last)
            } else {
                (net + 1, last - 1)
            };
            push_range(&mut out, lo, hi, part)?;
        } else if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a
                .trim()
                .parse()
                .map_err(|_| format!("bad range {part:?}"))?;
            let b: Ipv4Addr = b
                .trim()
                .parse()
                .map_err(|_| format!("bad range {part:?}"))?;
            if u32::from(b) < u32::from(a) {
                return Err(format!("bad range {part:?}: end before start"));
            }
            push_range(&mut out, u32::from(a), u32::from(b), part)?;
        } else {
            out.push(part.parse().map_err(|_| format!("bad address {part:?}"))?);
        }
        if out.len() > MAX_SOURCE_ADDRS {
            return Err(format!(
                "--source-addrs expands past {MAX_SOURCE_ADDRS} addresses"
            ));
        }
    }
    if out.is_empty() {
        return Err("--source-addrs is empty".into());
    }
    Ok(out)
}

fn push_range(out: &mut Vec<IpAddr>, lo: u32, hi: u32, part: &str) -> Result<(), String> {
    if u64::from(hi - lo) + 1 > MAX_SOURCE_ADDRS as u64 {
        return Err(format!(
            "{part:?} holds more than {MAX_SOURCE_ADDRS} addresses"
        ));
    }
    out.extend((lo..=hi).map(|a| IpAddr::V4(Ipv4Addr::from(a))));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lists_ranges_and_cidrs() {
        assert_eq!(
            parse_source_addrs("127.0.0.1, 127.0.0.2").unwrap(),
            vec![v4("127.0.0.1"), v4("127.0.0.2")]
        );
        assert_eq!(
            parse_source_addrs("127.0.0.8-127.0.0.10").unwrap(),
            vec![v4("127.0.0.8"), v4("127.0.0.9"), v4("127.0.0.10")]
        );
        assert_eq!(
            parse_source_addrs("127.0.1.0/30").unwrap(),
            vec![v4("127.0.1.1"), v4("127.0.1.2")]
        );
        assert_eq!(
            parse_source_addrs("127.0.0.5/32").unwrap(),
            vec![v4("127.0.0.5")]
        );
        assert_eq!(parse_source_addrs("::1").unwrap(), vec![v4("::1")]);
    }

    #[test]
    fn rejects_nonsense() {
        for s in [
            "",
            "x",
            "127.0.0.9-127.0.0.1",
            "127.0.0.0/33",
            "127.0.0.0/8",
        ] {
            assert!(parse_source_addrs(s).is_err(), "{s}");
        }
    }
}
