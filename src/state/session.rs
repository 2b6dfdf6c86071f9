//! Session windows: per key, events closer than the gap share a session.
//!
//! A session view's last key column holds a *session id*: the time of the
//! session's first event, which stays its id as the session grows. The
//! partial aggregate groups a batch by (key, event time); before merging,
//! [`GroupedState::merge_sessions`] maps each row's event time to the session
//! it extends (or a new one), and when an event bridges two sessions (a late
//! event in the gap), the later session's state is merged into the earlier
//! one and its group removed. The session index (each key's sessions and
//! their extent) is rebuilt from the state itself after a restore, from the
//! view's `min(ts)` and `max(ts)` aggregates, which a session view always has.

use std::collections::HashMap;

use datafusion::arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{Result, ScalarValue, internal_err};

use super::window::micros;
use super::{GroupedState, PartialLayout};

/// How a state's session key works.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// Events further apart than this are in different sessions, in microseconds.
    pub gap: i64,
    /// The aggregate computing each session's first event time (`min(ts)`).
    pub start_aggregate: usize,
    /// The aggregate computing its last (`max(ts)`).
    pub end_aggregate: usize,
}

/// One session: its extent and id.
#[derive(Debug, Clone, Copy)]
struct Session {
    start: i64,
    end: i64,
    id: i64,
}

/// Every key's sessions.
#[derive(Debug, Default)]
pub struct SessionIndex {
    by_key: HashMap<Vec<u8>, Vec<Session>>,
}

impl GroupedState {
    /// Makes this a session window's state.
    pub fn set_session(&mut self, spec: SessionSpec) {
        self.session = Some(spec);
        self.session_index = None;
    }

    fn user_key_converter(&self) -> Result<RowConverter> {
        let user_keys = self.key_types.len().saturating_sub(1);
        Ok(RowConverter::new(self.key_types[..user_keys].iter().map(|t| SortField::new(t.clone())).collect())?)
    }

    /// The session index, rebuilt from the groups when it is missing
    /// (a new, restored or truncated state).
    fn take_session_index(&mut self, spec: &SessionSpec) -> Result<SessionIndex> {
        if let Some(index) = self.session_index.take() {
            return Ok(index);
        }
        let mut index = SessionIndex::default();
        if self.groups == 0 {
            return Ok(index);
        }
        let keys = self.key_arrays()?;
        let Some(ids) = keys.last() else {
            return internal_err!("a session window needs its session key");
        };
        let ids = micros(ids)?;
        let user_rows = self.user_key_converter()?.convert_columns(&keys[..keys.len() - 1])?;
        let time = |v: ScalarValue| -> Result<Option<i64>> {
            let array = cast(&v.to_array()?, &datafusion::arrow::datatypes::DataType::Int64)?;
            Ok(ScalarValue::try_from_array(&array, 0)?.try_into().ok())
        };
        for (g, id) in ids.iter().enumerate() {
            let Some(id) = *id else { continue };
            let start = time(self.value_intact(g, spec.start_aggregate)?)?.unwrap_or(id);
            let end = time(self.value_intact(g, spec.end_aggregate)?)?.unwrap_or(id);
            index.by_key.entry(user_rows.row(g).as_ref().to_vec()).or_default().push(Session { start, end, id });
        }
        Ok(index)
    }

    /// Merges a partial batch whose last key column is the event time,
    /// assigning each row to its session.
    pub fn merge_sessions(&mut self, batch: &RecordBatch, layout: &PartialLayout) -> Result<()> {
        let Some(spec) = self.session.clone() else {
            return self.merge_partial(batch, layout);
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let key = layout.group_columns - 1;
        let mut index = self.take_session_index(&spec)?;
        let outcome = self.assign_sessions(batch, key, &spec, &mut index);
        self.session_index = Some(index);
        let ids = outcome?;
        let ids: ArrayRef = std::sync::Arc::new(TimestampMicrosecondArray::from(ids));
        let mut columns = batch.columns().to_vec();
        columns[key] = cast(&ids, batch.column(key).data_type())?;
        let assigned = RecordBatch::try_new(batch.schema(), columns)?;
        self.merge_partial(&assigned, layout)
    }

    /// Each row's session id, merging sessions that a row bridges.
    fn assign_sessions(
        &mut self,
        batch: &RecordBatch,
        key: usize,
        spec: &SessionSpec,
        index: &mut SessionIndex,
    ) -> Result<Vec<Option<i64>>> {
        let user_rows = self.user_key_converter()?.convert_columns(&batch.columns()[..key])?;
        let times = micros(batch.column(key))?;
        let mut ids = Vec::with_capacity(times.len());
        // Sessions merged away in this batch: (key, id) -> the id it joined.
        let mut redirect: HashMap<(Vec<u8>, i64), i64> = HashMap::new();
        for (row, t) in times.iter().enumerate() {
            let Some(t) = *t else {
                ids.push(None);
                continue;
            };
            let user_key = user_rows.row(row).as_ref().to_vec();
            let sessions = index.by_key.entry(user_key.clone()).or_default();
            let (near, far): (Vec<Session>, Vec<Session>) = sessions
                .iter()
                .partition(|s| s.start.saturating_sub(spec.gap) <= t && t <= s.end.saturating_add(spec.gap));
            let mut merged = Session { start: t, end: t, id: t };
            if let Some(first) = near.iter().min_by_key(|s| s.id) {
                merged.id = first.id;
            }
            for s in &near {
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
            }
            *sessions = far;
            sessions.push(merged);
            for s in near.iter().filter(|s| s.id != merged.id) {
                redirect.insert((user_key.clone(), s.id), merged.id);
                self.merge_session_group(batch, key, row, s.id, merged.id)?;
            }
            ids.push(Some(merged.id));
        }
        // Rows assigned before their session was merged away follow it.
        let resolved = ids
            .iter()
            .enumerate()
            .map(|(row, id)| {
                let mut id = (*id)?;
                let user_key = user_rows.row(row).as_ref().to_vec();
                while let Some(&next) = redirect.get(&(user_key.clone(), id)) {
                    id = next;
                }
                Some(id)
            })
            .collect();
        Ok(resolved)
    }

    /// Merges the stored group of session `from` into session `into`, for
    /// the user key of `row` of `batch`, and removes `from`'s group. The
    /// next checkpoint is full, since a delta cannot say a group went.
    fn merge_session_group(&mut self, batch: &RecordBatch, key: usize, row: usize, from: i64, into: i64) -> Result<()> {
        let key_of = |id: i64| -> Result<Vec<ArrayRef>> {
            let mut columns: Vec<ArrayRef> = batch.columns()[..key].iter().map(|c| c.slice(row, 1)).collect();
            let id: ArrayRef = std::sync::Arc::new(TimestampMicrosecondArray::from(vec![id]));
            columns.push(cast(&id, batch.column(key).data_type())?);
            Ok(columns)
        };
        let (Some(from_group), into_group) = (self.find_group(&key_of(from)?)?, self.find_group(&key_of(into)?)?)
        else {
            return Ok(()); // `from` exists only in this batch so far
        };
        let into_group = match into_group {
            Some(g) => g,
            None => self.intern(&key_of(into)?, 1)?[0],
        };
        let n = self.aggregates.len();
        for a in 0..n {
            let state = self.accumulators[from_group * n + a].state()?;
            let arrays: Vec<ArrayRef> = state.iter().map(|v| v.to_array()).collect::<Result<_>>()?;
            self.accumulators[into_group * n + a].merge_batch(&arrays)?;
        }
        self.mark_dirty(into_group);
        let keep: Vec<bool> = (0..self.groups).map(|g| g != from_group).collect();
        self.retain(&keep)?;
        self.full_pending = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{apply, lines, plan};

    const QUERY: &str =
        "SELECT k, count(*) AS n, sum(v) AS total FROM session(s, arrival_timestamp, interval '10 seconds') GROUP BY k";

    /// Events within the gap join a session; one that bridges two merges
    /// them (and forces a full checkpoint); after a restore the index is
    /// rebuilt from the state.
    #[tokio::test]
    async fn sessions_grow_merge_and_survive_a_restore() {
        let view = plan(QUERY, &[]).await;
        apply(&view, &[("a", 1, 0), ("a", 2, 18), ("b", 5, 3)]).await;
        assert_eq!(view.state.lock().groups(), 3);
        let snapshot = view.state.lock().take_snapshot(true).unwrap();
        assert!(!view.state.lock().needs_full());
        apply(&view, &[("a", 4, 9)]).await;
        assert_eq!(view.state.lock().groups(), 2, "a's two sessions became one");
        assert!(view.state.lock().needs_full(), "a delta cannot remove a group");
        let merged = lines(view.state.lock().evaluate_all(&view.state_schema).unwrap());
        assert!(merged.iter().any(|l| l.starts_with("a|") && l.ends_with("|3|7")), "{merged:?}");

        // Restore the earlier snapshot: two sessions for a, then the bridge again.
        let restored = plan(QUERY, &[]).await;
        restored.state.lock().restore(&snapshot).unwrap();
        apply(&restored, &[("a", 4, 9), ("a", 8, 27)]).await;
        let rows = lines(restored.state.lock().evaluate_all(&restored.state_schema).unwrap());
        assert_eq!(restored.state.lock().groups(), 2, "{rows:?}");
        assert!(rows.iter().any(|l| l.starts_with("a|") && l.ends_with("|4|15")), "{rows:?}");
    }
}
