//! Event time and watermarks.
//!
//! A stream declares its event-time column and how late events may be:
//! `CREATE STREAM s (ts timestamptz, ...) WITH (timestamp = 'ts',
//! lateness = '10 seconds', idle_timeout = '30 seconds')`. Its watermark is
//! the time before which no more events are expected:
//!
//! - the newest event time seen, minus the lateness;
//! - once the stream has been idle (no rows arrived) for `idle_timeout`,
//!   the clock minus the lateness, so that windows close when traffic stops;
//! - never lower than it has been.
//!
//! An event whose time is behind the watermark when it arrives is *late*:
//! windowed views of the stream do not see it, and the stream counts it
//! (`pipelinedb.streams.late_rows`). A window whose end is at or before the
//! watermark is final: no event can change it any more. Every decision is
//! taken at the rows' `arrival_timestamp`, which the insert log keeps, so
//! replaying the log after a crash drops exactly the same rows.

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, TimestampMicrosecondArray};
use datafusion::arrow::compute::{cast, filter_record_batch, max};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::Result;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{WindowError, parse_duration};

/// How long a stream may be idle before its watermark follows the clock,
/// unless `idle_timeout` says otherwise.
pub const DEFAULT_IDLE_TIMEOUT_MICROS: i64 = 10_000_000;

/// `WITH (...)` options, as keys and values.
pub type Options = Vec<(String, String)>;

/// A stream's declared event time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTime {
    /// The event-time column.
    pub column: String,
    /// How late an event may be, in microseconds.
    pub lateness: i64,
    /// Idle time after which the watermark follows the clock, in microseconds.
    pub idle_timeout: i64,
}

impl EventTime {
    /// Reads `timestamp`, `lateness` and `idle_timeout` from a stream's
    /// options; returns the options it did not use.
    pub fn from_options(options: &[(String, String)]) -> Result<(Option<Self>, Options), WindowError> {
        let mut column = None;
        let mut lateness = 0;
        let mut idle_timeout = DEFAULT_IDLE_TIMEOUT_MICROS;
        let mut rest = Vec::new();
        let mut timing = false;
        for (key, value) in options {
            match key.as_str() {
                "timestamp" => column = Some(value.to_lowercase()),
                "lateness" => {
                    timing = true;
                    lateness = if value.trim() == "0" { 0 } else { parse_duration("lateness", value)? };
                }
                "idle_timeout" => {
                    timing = true;
                    idle_timeout = parse_duration("idle_timeout", value)?;
                }
                _ => rest.push((key.clone(), value.clone())),
            }
        }
        match column {
            Some(column) => Ok((Some(Self { column, lateness, idle_timeout }), rest)),
            None if timing => Err(WindowError::InvalidOption(
                "lateness and idle_timeout need timestamp = '<column>', the stream's event-time column".into(),
            )),
            None => Ok((None, rest)),
        }
    }
}

/// What a stream's watermark remembers; saved with every checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkState {
    /// The newest on-time event time seen.
    pub max_event: Option<i64>,
    /// When rows last arrived.
    pub last_arrival: Option<i64>,
    /// The highest watermark a decision was taken at.
    pub floor: Option<i64>,
    /// Rows dropped as late.
    pub late_rows: u64,
}

/// A stream's watermark.
#[derive(Debug, Default)]
pub struct Watermark {
    state: Mutex<WatermarkState>,
}

impl Watermark {
    /// The watermark at `now`, or `None` before the first event.
    pub fn at(&self, def: &EventTime, now: i64) -> Option<i64> {
        current(&self.state.lock(), def, now)
    }

    /// Rows dropped as late so far.
    pub fn late_rows(&self) -> u64 {
        self.state.lock().late_rows
    }

    /// The state to checkpoint.
    pub fn snapshot(&self) -> WatermarkState {
        *self.state.lock()
    }

    /// Puts back a checkpointed state.
    pub fn restore(&self, state: WatermarkState) {
        *self.state.lock() = state;
    }

    /// Splits `batch` into the rows windowed views may see and the number
    /// of late rows, and advances the watermark. `column` is the event-time
    /// column's index; `arrival` is when the rows arrived.
    pub fn admit(
        &self,
        def: &EventTime,
        batch: &RecordBatch,
        column: usize,
        arrival: i64,
    ) -> Result<(RecordBatch, usize)> {
        let times = cast(batch.column(column), &DataType::Timestamp(TimeUnit::Microsecond, None))?;
        let times = times
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .ok_or_else(|| datafusion::error::DataFusionError::Internal("event time is not a timestamp".into()))?;
        let mut state = self.state.lock();
        let watermark = current(&state, def, arrival);
        let keep: BooleanArray = times
            .iter()
            .map(|t| {
                Some(matches!((t, watermark), (Some(t), Some(w)) if t >= w) || (t.is_some() && watermark.is_none()))
            })
            .collect();
        let on_time = filter_record_batch(batch, &keep)?;
        let late = batch.num_rows() - on_time.num_rows();
        let kept_times = datafusion::arrow::compute::filter(times, &keep)?;
        let kept_times = kept_times.as_any().downcast_ref::<TimestampMicrosecondArray>();
        if let Some(newest) = kept_times.and_then(max) {
            state.max_event = Some(state.max_event.map_or(newest, |m| m.max(newest)));
        }
        state.floor = watermark.max(state.floor);
        state.last_arrival = Some(state.last_arrival.map_or(arrival, |a| a.max(arrival)));
        state.late_rows += late as u64;
        Ok((on_time, late))
    }
}

fn current(state: &WatermarkState, def: &EventTime, now: i64) -> Option<i64> {
    let from_events = state.max_event.map(|m| m.saturating_sub(def.lateness));
    let idle = state
        .last_arrival
        .filter(|&last| now.saturating_sub(last) >= def.idle_timeout)
        .map(|_| now.saturating_sub(def.lateness));
    from_events.max(idle).max(state.floor)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(times: &[Option<i64>]) -> RecordBatch {
        let schema =
            Arc::new(Schema::new(vec![Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true)]));
        RecordBatch::try_new(schema, vec![Arc::new(TimestampMicrosecondArray::from(times.to_vec()))]).unwrap()
    }

    #[test]
    fn late_rows_are_dropped_and_idle_streams_advance() {
        let def = EventTime { column: "ts".into(), lateness: 10, idle_timeout: 100 };
        let w = Watermark::default();
        assert_eq!(w.at(&def, 0), None);
        let (kept, late) = w.admit(&def, &batch(&[Some(1_000), Some(990), None]), 0, 5_000).unwrap();
        assert_eq!((kept.num_rows(), late), (2, 1), "before any event nothing is late but a NULL time");
        assert_eq!(w.at(&def, 5_050), Some(990));
        let (kept, late) = w.admit(&def, &batch(&[Some(985), Some(995), Some(2_000)]), 0, 5_050).unwrap();
        assert_eq!((kept.num_rows(), late), (2, 1));
        assert_eq!(w.at(&def, 5_060), Some(1_990));
        // Idle for 100: the watermark follows the clock.
        assert_eq!(w.at(&def, 5_150), Some(5_140));
        let (kept, late) = w.admit(&def, &batch(&[Some(3_000)]), 0, 5_200).unwrap();
        assert_eq!((kept.num_rows(), late), (0, 1), "behind the idle watermark");
        // It never goes back.
        assert_eq!(w.at(&def, 5_210), Some(5_190));
        assert_eq!(w.late_rows(), 3);
    }

    #[test]
    fn options() {
        let opts = |p: &[(&str, &str)]| p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let (def, rest) =
            EventTime::from_options(&opts(&[("timestamp", "TS"), ("lateness", "10 seconds"), ("kafka_topic", "t")]))
                .unwrap();
        assert_eq!(
            def,
            Some(EventTime { column: "ts".into(), lateness: 10_000_000, idle_timeout: DEFAULT_IDLE_TIMEOUT_MICROS })
        );
        assert_eq!(rest.len(), 1);
        assert!(EventTime::from_options(&opts(&[("lateness", "1 second")])).is_err());
    }
}
