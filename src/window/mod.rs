//! Time windows: what a view's `WITH (sw = ..., ttl = ...)`, `tumble()`,
//! `hop()` and ksqlDB's `WINDOW` clause mean, and how time passes for them.
//!
//! Windows reduce to group keys. A tumbling or hopping window is a group
//! key column (`window_start`), computed below the aggregate by a rewrite of
//! the view's query (`rewrite.rs`). A sliding window keeps its state in
//! *steps*: the rewrite adds a hidden group key, the step an event falls in,
//! and reads merge the steps still inside the window (`crate::state`'s
//! sliding evaluation), so a step leaves the results the moment it expires,
//! with no new events. Expired steps, and groups past a view's TTL, are
//! removed by a sweep (`ViewRuntime::expire`). Streams with an event-time
//! column track a watermark (`watermark.rs`); events behind it are dropped
//! from windowed views and counted.

pub mod functions;
pub mod rewrite;
pub mod watermark;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalUnit};

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// Errors in window options and clauses.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// An option's value is not valid.
    #[error("{0}")]
    InvalidOption(String),
    /// A window form Eddy does not support (yet).
    #[error("{0}")]
    Unsupported(String),
    /// The clock could not be moved.
    #[error(transparent)]
    Clock(#[from] crate::clock::ClockError),
}

/// Parses an interval such as `30 minutes`, `1 hour 30 minutes` or
/// `00:05:00` into microseconds. Months and years have no fixed length, so
/// they are refused; windows are given in days or shorter units.
pub fn parse_duration(option: &str, text: &str) -> Result<i64, WindowError> {
    let bad = |why: &str| {
        WindowError::InvalidOption(format!(
            "{option} '{text}' is not a valid interval ({why}); write it as, for example, '30 minutes' or '1 hour'"
        ))
    };
    let normalized = crate::catalog::types::interval_text(text.trim());
    let strings = StringArray::from(vec![normalized]);
    let parsed = cast(&strings, &DataType::Interval(IntervalUnit::MonthDayNano)).map_err(|e| bad(&e.to_string()))?;
    let parsed = parsed
        .as_any()
        .downcast_ref::<datafusion::arrow::array::IntervalMonthDayNanoArray>()
        .ok_or_else(|| bad("not an interval"))?;
    if parsed.is_null(0) {
        return Err(bad("empty"));
    }
    interval_micros(option, text, parsed.value(0))
}

/// An interval's length in microseconds; months are refused.
pub fn interval_micros(option: &str, text: &str, value: IntervalMonthDayNano) -> Result<i64, WindowError> {
    if value.months != 0 {
        return Err(WindowError::InvalidOption(format!(
            "{option} '{text}' uses months or years, which have no fixed length; give it in days instead"
        )));
    }
    let micros = (value.days as i64).saturating_mul(DAY_MICROS).saturating_add(value.nanoseconds / 1_000);
    if micros <= 0 {
        return Err(WindowError::InvalidOption(format!("{option} '{text}' must be a positive interval")));
    }
    Ok(micros)
}

/// A duration as PostgreSQL prints an interval: `00:30:00`, `1 day 02:00:00`.
pub fn format_duration(micros: i64) -> String {
    let days = micros / DAY_MICROS;
    let rest = micros % DAY_MICROS;
    let (h, m) = (rest / 3_600_000_000, rest / 60_000_000 % 60);
    let (s, us) = (rest / 1_000_000 % 60, rest % 1_000_000);
    let clock = if us == 0 { format!("{h:02}:{m:02}:{s:02}") } else { format!("{h:02}:{m:02}:{s:02}.{us:06}") };
    match days {
        0 => clock,
        1 => format!("1 day {clock}"),
        d => format!("{d} days {clock}"),
    }
}

/// An interval in microseconds as SQL text (`INTERVAL '90000000 microseconds'`).
pub fn interval_sql(micros: i64) -> String {
    format!("INTERVAL '{micros} microseconds'")
}

/// A sliding window: events of the last `width`, kept in steps of `step`,
/// on the timestamp column `column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sliding {
    /// How far back the window reaches, in microseconds.
    pub width: i64,
    /// The step, in microseconds.
    pub step: i64,
    /// The timestamp column (`arrival_timestamp` unless `sw_column`).
    pub column: String,
}

impl Sliding {
    /// The oldest step start still inside the window at `now`: a step is in
    /// the window while its start is after `now - width`, as PipelineDB's
    /// step-wise sliding windows read.
    pub fn oldest_live_step(&self, now: i64) -> i64 {
        let edge = now.saturating_sub(self.width);
        // The first step start strictly after `edge`.
        edge.div_euclid(self.step).saturating_add(1).saturating_mul(self.step)
    }
}

impl Sliding {
    /// The step starts live at `now`: from the oldest still in the window
    /// to the one `now` falls in (events stamped later than the clock count
    /// once their time has come).
    pub fn live_steps(&self, now: i64) -> std::ops::RangeInclusive<i64> {
        self.oldest_live_step(now)..=now.div_euclid(self.step).saturating_mul(self.step)
    }

    /// How many steps start in `live`.
    pub fn step_count(&self, live: &std::ops::RangeInclusive<i64>) -> usize {
        if live.is_empty() { 0 } else { ((live.end() - live.start()) / self.step + 1) as usize }
    }

    /// The step starts in `live`.
    pub fn step_starts(&self, live: &std::ops::RangeInclusive<i64>) -> Vec<i64> {
        (0..self.step_count(live) as i64).map(|i| live.start() + i * self.step).collect()
    }
}

/// Retention: groups whose `column` is older than `ttl` are removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ttl {
    /// How long a group lives, in microseconds.
    pub ttl: i64,
    /// The view's output column holding the group's time.
    pub column: String,
}

/// A view's window and retention options, from `WITH (...)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewOptions {
    /// `sw`, `step_factor` and `sw_column`.
    pub sliding: Option<Sliding>,
    /// `ttl` and `ttl_column`.
    pub ttl: Option<Ttl>,
    /// `notify`: the channel the view's changes are announced on.
    pub notify: Option<String>,
    /// `action = transform` (PipelineDB), or `CREATE STREAM ... AS SELECT`
    /// (ksqlDB): a derived stream, which passes each event through and
    /// keeps nothing.
    pub transform: bool,
}

/// PipelineDB's default step: 5% of the window.
pub const DEFAULT_STEP_FACTOR: f64 = 5.0;

impl ViewOptions {
    /// Reads `WITH (...)`: `action`, `sw`, `step_factor`, `sw_column`, `ttl`
    /// and `ttl_column`.
    pub fn parse(options: &[(String, String)]) -> Result<Self, WindowError> {
        let get = |k: &str| options.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        for (key, value) in options {
            match key.as_str() {
                "action" if value.eq_ignore_ascii_case("materialize") || value.eq_ignore_ascii_case("transform") => {}
                "action" => {
                    return Err(WindowError::Unsupported(format!(
                        "action \"{value}\" is not supported; a view takes action = materialize (the default) or action = transform"
                    )));
                }
                "sw" | "step_factor" | "sw_column" | "ttl" | "ttl_column" => {}
                "notify" if value.is_empty() => {
                    return Err(WindowError::InvalidOption(
                        "notify needs a channel name, as in notify = 'orders'".into(),
                    ));
                }
                "notify" => {}
                other => {
                    return Err(WindowError::Unsupported(format!(
                        "continuous view option \"{other}\" is not supported; a view takes action, notify, sw, step_factor, sw_column, ttl and ttl_column"
                    )));
                }
            }
        }
        let sliding = match get("sw") {
            Some(sw) => {
                let factor = match get("step_factor") {
                    Some(f) => f.parse::<f64>().ok().filter(|f| *f > 0.0 && *f <= 50.0).ok_or_else(|| {
                        WindowError::InvalidOption(format!(
                            "step_factor '{f}' must be a number greater than 0 and at most 50 (percent of the window)"
                        ))
                    })?,
                    None => DEFAULT_STEP_FACTOR,
                };
                let column = get("sw_column").unwrap_or(crate::catalog::ARRIVAL_TIMESTAMP);
                Some(Sliding::new(parse_duration("sw", sw)?, factor, column))
            }
            None if get("step_factor").is_some() || get("sw_column").is_some() => {
                return Err(WindowError::InvalidOption("step_factor and sw_column need sw, the window's width".into()));
            }
            None => None,
        };
        let ttl = match (get("ttl"), get("ttl_column")) {
            (Some(ttl), Some(column)) => Some(Ttl { ttl: parse_duration("ttl", ttl)?, column: column.to_lowercase() }),
            (None, None) => None,
            _ => {
                return Err(WindowError::InvalidOption(
                    "ttl and ttl_column go together: ttl = '1 day', ttl_column = 'minute' names a grouped timestamp column of the view".into(),
                ));
            }
        };
        let transform = get("action").is_some_and(|a| a.eq_ignore_ascii_case("transform"));
        if transform && (sliding.is_some() || ttl.is_some()) {
            return Err(WindowError::Unsupported(
                "a transform keeps no rows, so sw and ttl have no meaning on it; put them on a view that reads it"
                    .into(),
            ));
        }
        Ok(Self { sliding, ttl, notify: get("notify").map(str::to_string), transform })
    }
}

impl Sliding {
    /// A window of `width` whose steps are `factor` percent of it (at least 1 ms).
    pub fn new(width: i64, factor: f64, column: &str) -> Self {
        let step = ((width as f64) * factor / 100.0).round() as i64;
        Self { width, step: step.max(1_000), column: column.to_lowercase() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("sw", "30 minutes").unwrap(), 1_800_000_000);
        assert_eq!(parse_duration("sw", "1 hour 30 minutes").unwrap(), 5_400_000_000);
        assert_eq!(parse_duration("sw", "00:05:00").unwrap(), 300_000_000);
        assert_eq!(parse_duration("sw", "2 days").unwrap(), 2 * DAY_MICROS);
        assert!(parse_duration("sw", "1 month").is_err());
        assert!(parse_duration("sw", "banana").is_err());
        assert!(parse_duration("sw", "-5 minutes").is_err());
    }

    #[test]
    fn sliding_defaults_to_five_percent_steps() {
        let o = ViewOptions::parse(&opts(&[("sw", "1 hour")])).unwrap();
        let s = o.sliding.unwrap();
        assert_eq!((s.width, s.step, s.column.as_str()), (3_600_000_000, 180_000_000, "arrival_timestamp"));
        let o = ViewOptions::parse(&opts(&[("sw", "1 hour"), ("step_factor", "10"), ("sw_column", "ts")])).unwrap();
        assert_eq!(o.sliding.unwrap().step, 360_000_000);
        assert!(ViewOptions::parse(&opts(&[("step_factor", "10")])).is_err());
        assert!(ViewOptions::parse(&opts(&[("sw", "1 hour"), ("step_factor", "0")])).is_err());
        assert!(ViewOptions::parse(&opts(&[("ttl", "1 day")])).is_err());
        assert!(ViewOptions::parse(&opts(&[("colour", "red")])).is_err());
    }

    #[test]
    fn oldest_live_step_is_after_the_window_edge() {
        let s = Sliding { width: 100, step: 10, column: "t".into() };
        assert_eq!(s.oldest_live_step(1_000), 910);
        assert_eq!(s.oldest_live_step(1_005), 910);
        assert_eq!(s.oldest_live_step(1_010), 920);
    }
}
