//! `tuning.txt`: the host's settings at the start of a run, `key = value` lines (the
//! host sampler writes it; the report shows it).

/// Reads `tuning.txt` back: `(key, value)` in file order; other lines are ignored.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}
