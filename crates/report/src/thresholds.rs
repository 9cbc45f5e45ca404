//! The limits a phase is judged against, and where each came from.
//!
//! Five sources, each over the one before: the report's defaults, the load generators'
//! own (`--max-p99-ms`, `--max-error-rate`, recorded in their `summary.json`: the
//! strictest when they differ), `run.json`'s run-wide `thresholds`, a phase's own
//! `thresholds` in `run.json`, and the flags of `redpacket-report`. A limit is resolved one by one, so a phase can set its p99 and
//! keep the run's rate tolerance. The verdict prints the limits in force with their
//! sources, and `report.json` carries the same.

use serde::Serialize;

use redpacket_formats::run::Thresholds;
use redpacket_formats::{PhasePlan, RunMeta, Verdict};

/// The default highest p99, ms: the old test's target.
pub const DEFAULT_MAX_P99_MS: f64 = 50.0;
/// The default rate tolerance, percent below the target.
pub const DEFAULT_RATE_TOLERANCE_PCT: f64 = 1.0;
/// The default highest share of errors and timeouts: none.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.0;

/// Where a limit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Default,
    /// The load generators' own flags, as their `summary.json` recorded them.
    Loadgen,
    /// `run.json`'s run-wide `thresholds`.
    RunJson,
    /// The phase's own `thresholds` in `run.json`.
    Phase,
    /// A flag of `redpacket-report`.
    Flag,
}

impl Source {
    pub fn word(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Loadgen => "summary.json",
            Source::RunJson => "run.json",
            Source::Phase => "phase",
            Source::Flag => "flag",
        }
    }
}

/// One limit in force: its value (`None`: not judged) and its source.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Limit {
    pub value: Option<f64>,
    pub source: Source,
}

/// The limits one phase is judged against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct InForce {
    pub max_p99_ms: Limit,
    pub max_p999_ms: Limit,
    pub rate_tolerance_pct: Limit,
    pub max_error_rate: Limit,
}

/// The first source that sets the limit, highest first; the default when none does.
fn pick(sets: [(Option<f64>, Source); 4], default: Option<f64>) -> Limit {
    sets.into_iter()
        // A limit that is not a number (NaN, infinite) judges nothing: left to the next.
        .find_map(|(v, source)| v.filter(|v| v.is_finite()).map(|v| (v, source)))
        .map_or(
            Limit {
                value: default,
                source: Source::Default,
            },
            |(v, source)| Limit {
                value: Some(v),
                source,
            },
        )
}

impl InForce {
    /// The limits of `phase`: `flags` over the phase's own over the run's over the
    /// load generators' (`loadgen`) over the defaults. `phase` is `None` for the
    /// run-wide limits.
    pub fn resolve(
        flags: &Thresholds,
        run: &RunMeta,
        phase: Option<&PhasePlan>,
        loadgen: &Thresholds,
    ) -> InForce {
        let own = phase.map(|p| p.thresholds).unwrap_or_default();
        let run = run.thresholds;
        let limit = |f: fn(&Thresholds) -> Option<f64>, default: Option<f64>| {
            pick(
                [
                    (f(flags), Source::Flag),
                    (f(&own), Source::Phase),
                    (f(&run), Source::RunJson),
                    (f(loadgen), Source::Loadgen),
                ],
                default,
            )
        };
        InForce {
            max_p99_ms: limit(|t| t.max_p99_ms, Some(DEFAULT_MAX_P99_MS)),
            max_p999_ms: limit(|t| t.max_p999_ms, None),
            rate_tolerance_pct: limit(|t| t.rate_tolerance_pct, Some(DEFAULT_RATE_TOLERANCE_PCT)),
            max_error_rate: limit(|t| t.max_error_rate, Some(DEFAULT_MAX_ERROR_RATE)),
        }
    }

    /// `p99 <= 50 ms (default), p99.9 not judged (default), ...`.
    pub fn describe(&self) -> String {
        // Limits as given: 50, 0.5, 0.001 (Rust's shortest form that reads back).
        let one = |what: &str, l: Limit, show: &dyn Fn(f64) -> String| match l.value {
            Some(v) => format!("{what} {} ({})", show(v), l.source.word()),
            None => format!("{what} not judged ({})", l.source.word()),
        };
        [
            one("p99", self.max_p99_ms, &|v| format!("<= {v} ms")),
            one("p99.9", self.max_p999_ms, &|v| format!("<= {v} ms")),
            one("achieved rate", self.rate_tolerance_pct, &|v| {
                format!("at most {v} % under target")
            }),
            one("errors + timeouts", self.max_error_rate, &|v| {
                format!("at most {v} of the shakes due")
            }),
        ]
        .join(", ")
    }
}

/// The load generators' own limits, from their summaries' `verdict`: for each, the
/// strictest any of them was given.
pub fn of_loadgens<'a>(verdicts: impl IntoIterator<Item = &'a Verdict>) -> Thresholds {
    let min = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let finite = |v: Option<f64>| v.filter(|v| v.is_finite() && *v >= 0.0);
    verdicts
        .into_iter()
        .fold(Thresholds::default(), |t, v| Thresholds {
            max_p99_ms: min(t.max_p99_ms, finite(v.max_p99_ms)),
            max_error_rate: min(t.max_error_rate, finite(v.max_error_rate)),
            ..t
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_takes_the_highest_source_that_sets_it() {
        let mut run = RunMeta::default();
        let none = Thresholds::default();
        let d = InForce::resolve(&none, &run, None, &none);
        assert_eq!(d.max_p99_ms.value, Some(DEFAULT_MAX_P99_MS));
        assert_eq!(d.max_p999_ms.value, None);
        assert_eq!(d.rate_tolerance_pct.source, Source::Default);
        run.thresholds.max_p99_ms = Some(20.0);
        run.thresholds.max_error_rate = Some(0.01);
        let phase = PhasePlan {
            thresholds: Thresholds {
                max_p99_ms: Some(30.0),
                max_p999_ms: Some(f64::NAN),
                ..none
            },
            ..Default::default()
        };
        let flags = Thresholds {
            max_error_rate: Some(0.5),
            ..none
        };
        let f = InForce::resolve(&flags, &run, Some(&phase), &none);
        assert_eq!(f.max_p99_ms.value, Some(30.0));
        assert_eq!(f.max_p99_ms.source, Source::Phase);
        assert_eq!(f.max_error_rate.value, Some(0.5));
        assert_eq!(f.max_error_rate.source, Source::Flag);
        // A limit that is not a number is left to the source under it.
        assert_eq!(f.max_p999_ms.source, Source::Default);
        let r = InForce::resolve(&none, &run, None, &none);
        assert_eq!(r.max_p99_ms.source, Source::RunJson);
        // The load generators' own, the strictest of them, under run.json.
        let lg = of_loadgens(&[
            Verdict {
                max_p99_ms: Some(30.0),
                max_error_rate: Some(0.2),
                ..Default::default()
            },
            Verdict {
                max_p99_ms: Some(10.0),
                ..Default::default()
            },
        ]);
        assert_eq!((lg.max_p99_ms, lg.max_error_rate), (Some(10.0), Some(0.2)));
        let r = InForce::resolve(&none, &RunMeta::default(), None, &lg);
        assert_eq!(r.max_p99_ms.value, Some(10.0));
        assert_eq!(r.max_p99_ms.source.word(), "summary.json");
        assert_eq!(
            InForce::resolve(&none, &run, None, &lg).max_p99_ms.source,
            Source::RunJson
        );
    }
}
