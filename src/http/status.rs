//! `GET /api/status`: the figures the status page shows, as one small JSON
//! document. Read from the same atomics as `/metrics` and the SQL
//! relations. Times are microseconds since the Unix epoch.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::history::History;
use crate::server::Engine;

/// How many of the newest Kafka errors the page lists.
const RECENT_ERRORS: usize = 10;

/// The status of `engine`. Blocks while it asks the Kafka brokers for their
/// high watermarks, so run it off the async threads.
pub fn status(engine: &Arc<Engine>, history: &History) -> Value {
    let sessions = &engine.sessions;
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started": sessions.started,
        "now": crate::observe::wall_micros(),
        "connections": sessions.current(),
        "memory_bytes": crate::observe::resident_bytes(),
        "streams": streams(engine, history),
        "tables": tables(engine, history),
        "views": views(engine, history),
        "consumers": consumers(engine),
        "sinks": sinks(engine),
        "checkpoint": checkpoint(engine),
        "errors": errors(engine),
    })
}

fn streams(engine: &Engine, history: &History) -> Vec<Value> {
    let all = engine.catalog.streams();
    all.iter()
        .map(|s| {
            let t = s.traffic();
            let rates = history.rates("stream", &s.def.name);
            json!({"name": s.def.name, "rows": t.rows(), "bytes": t.bytes(), "last_change": t.last(), "views": s.views().len(), "rates": rates})
        })
        .collect()
}

fn tables(engine: &Engine, history: &History) -> Vec<Value> {
    let all = engine.catalog.tables();
    all.iter()
        .map(|t| {
            let traffic = t.traffic();
            let rates = history.rates("table", &t.def.name);
            json!({"name": t.def.name, "rows": traffic.rows(), "bytes": traffic.bytes(), "last_change": traffic.last(), "rates": rates})
        })
        .collect()
}

fn views(engine: &Engine, history: &History) -> Vec<Value> {
    let all = engine.catalog.views();
    all.iter()
        .map(|v| {
            let apply = v.apply_latency().snapshot();
            json!({
                "name": v.name(),
                "inputs": v.inputs(),
                "rows": v.rows_in(),
                "groups": v.groups(),
                "state_bytes": v.state_bytes(),
                "last_change": v.traffic().last(),
                "applies": apply.count,
                "apply_seconds": apply.sum,
                "rates": history.rates("view", v.name()),
            })
        })
        .collect()
}

fn consumers(engine: &Engine) -> Vec<Value> {
    let all = engine.kafka.consumers();
    all.iter()
        .map(|c| {
            let (status, last_error) = c.status();
            let high = c.high_watermarks();
            let offsets = c.offsets();
            let lag: Option<i64> = (!high.is_empty())
                .then(|| offsets.iter().filter_map(|(p, o)| high.get(p).map(|h| (h - o).max(0))).sum());
            json!({
                "topic": c.topic,
                "relation": c.stream,
                "status": status,
                "last_error": last_error,
                "messages": c.stats.messages.load(Ordering::Relaxed),
                "rows": c.stats.rows.load(Ordering::Relaxed),
                "errors": c.stats.errors.load(Ordering::Relaxed),
                "lag": lag,
            })
        })
        .collect()
}

fn sinks(engine: &Engine) -> Vec<Value> {
    let all = engine.sinks.list();
    all.iter()
        .map(|s| {
            let status = s.status();
            json!({
                "name": s.name,
                "relation": s.relation,
                "topic": s.options.topic,
                "status": status.state,
                "messages": status.messages,
                "lag": status.lag,
                "last_error": status.last_error,
            })
        })
        .collect()
}

fn checkpoint(engine: &Engine) -> Value {
    let t = engine.catalog.durability().telemetry();
    let duration = t.duration.snapshot();
    json!({
        "persistent": engine.catalog.durability().is_persistent(),
        "completed": t.completed(),
        "failed": t.failed_total(),
        "bytes": t.bytes(),
        "last_success": t.last_success(),
        "mean_seconds": (duration.count > 0).then(|| duration.sum / duration.count as f64),
        "last_error": t.last_error().map(|(at, why)| json!({"at": at, "error": why})),
    })
}

/// The newest problems: Kafka messages left out, sinks and checkpoints that
/// failed. Newest first.
fn errors(engine: &Engine) -> Vec<Value> {
    let mut all: Vec<(i64, String, String)> = engine
        .kafka
        .errors()
        .into_iter()
        .map(|e| (e.at_micros, format!("kafka {} → {}", e.topic, e.stream), e.error))
        .collect();
    if let Some((at, why)) = engine.catalog.durability().telemetry().last_error() {
        all.push((at, "checkpoint".into(), why));
    }
    all.sort_by_key(|e| std::cmp::Reverse(e.0));
    all.truncate(RECENT_ERRORS);
    let mut out: Vec<Value> =
        all.into_iter().map(|(at, source, error)| json!({"at": at, "source": source, "error": error})).collect();
    for sink in engine.sinks.list() {
        if let Some(error) = sink.status().last_error {
            out.push(json!({"at": null, "source": format!("sink {}", sink.name), "error": error}));
        }
    }
    out
}
