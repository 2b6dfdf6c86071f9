//! `GET /metrics`: every figure in Prometheus' text format, read at scrape
//! time from the same atomics the SQL relations read (`pipelinedb.streams`,
//! `pipelinedb.views`, `pipeline_kafka.consumers`, `pipelinedb.sinks`). No
//! counter is kept twice.
//!
//! Names carry the `eddy_` prefix and base units; counters end in `_total`
//! (the encoder adds it). Labels are `stream`, `table`, `view`, `sink`,
//! `topic`, `relation`, `partition` and `kind`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::observe::{HistogramSnapshot, QueryKind};
use crate::server::Engine;

/// One label set: `(name, value)` pairs.
type Labels = Vec<(&'static str, String)>;

/// The metrics of `engine`, as Prometheus' text format. Blocks while it asks
/// the Kafka brokers for their high watermarks (the lag), so run it off the
/// async threads.
pub fn render(engine: Arc<Engine>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(EngineCollector(engine)));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Reads the engine at each scrape.
#[derive(Debug)]
struct EngineCollector(Arc<Engine>);

/// Writes one metric family, one sample per label set.
struct Family<'a, 'b> {
    encoder: &'a mut DescriptorEncoder<'b>,
}

impl Family<'_, '_> {
    fn samples<T>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        rows: impl IntoIterator<Item = (Labels, T)>,
        mut write: impl FnMut(&mut MetricEncoder, T) -> Result<(), std::fmt::Error>,
    ) -> Result<(), std::fmt::Error> {
        let mut metric = self.encoder.encode_descriptor(name, help, None, kind)?;
        for (labels, value) in rows {
            let mut sample = metric.encode_family(&labels)?;
            write(&mut sample, value)?;
        }
        Ok(())
    }

    fn counters(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, u64)>) -> Fmt {
        self.samples(name, help, MetricType::Counter, rows, |m, v| m.encode_counter::<NoLabelSet, _, u64>(&v, None))
    }

    fn gauges(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, f64)>) -> Fmt {
        self.samples(name, help, MetricType::Gauge, rows, |m, v| m.encode_gauge(&v))
    }

    fn histograms(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (Labels, HistogramSnapshot)>,
    ) -> Fmt {
        self.samples(name, help, MetricType::Histogram, rows, |m, h| {
            // The encoder adds the buckets up itself.
            let mut below = 0;
            let buckets: Vec<(f64, u64)> = h
                .buckets
                .iter()
                .map(|(bound, cumulative)| {
                    let here = cumulative - below;
                    below = *cumulative;
                    (*bound, here)
                })
                .collect();
            m.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)
        })
    }
}

type Fmt = Result<(), std::fmt::Error>;

fn label(name: &'static str, value: &str) -> Labels {
    vec![(name, value.to_string())]
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Fmt {
        let mut family = Family { encoder: &mut encoder };
        let engine = &self.0;
        relations(&mut family, engine)?;
        kafka(&mut family, engine)?;
        sinks(&mut family, engine)?;
        durability(&mut family, engine)?;
        server(&mut family, engine)
    }
}

/// Streams, tables and views.
fn relations(f: &mut Family, engine: &Engine) -> Fmt {
    let streams = engine.catalog.streams();
    let stream_rows = streams.iter().map(|s| (label("stream", &s.def.name), s.traffic().rows()));
    f.counters(
        "eddy_stream_rows",
        "Rows written to each stream, from every source, since the server started.",
        stream_rows,
    )?;
    let stream_bytes = streams.iter().map(|s| (label("stream", &s.def.name), s.traffic().bytes()));
    f.counters("eddy_stream_bytes", "Bytes of the rows written to each stream, as Arrow holds them.", stream_bytes)?;
    let tables = engine.catalog.tables();
    let table_rows = tables.iter().map(|t| (label("table", &t.def.name), t.traffic().rows()));
    f.counters(
        "eddy_table_rows",
        "Rows changed in each table (added plus removed), since the server started.",
        table_rows,
    )?;
    let table_bytes = tables.iter().map(|t| (label("table", &t.def.name), t.traffic().bytes()));
    f.counters("eddy_table_bytes", "Bytes of the rows changed in each table, as Arrow holds them.", table_bytes)?;
    let views = engine.catalog.views();
    let applied = views.iter().map(|v| (label("view", v.name()), v.rows_in()));
    f.counters("eddy_view_rows", "Rows each view (or derived stream) applied, since the server started.", applied)?;
    let groups = views.iter().map(|v| (label("view", v.name()), v.groups() as f64));
    f.gauges("eddy_view_groups", "Groups (or rows) each view holds.", groups)?;
    let bytes = views.iter().map(|v| (label("view", v.name()), v.state_bytes() as f64));
    f.gauges("eddy_view_state_bytes", "Bytes of state each view holds, as its accumulators estimate them.", bytes)?;
    let apply = views.iter().map(|v| (label("view", v.name()), v.apply_latency().snapshot()));
    f.histograms("eddy_view_apply_seconds", "Time from a write reaching a view to its rows being visible.", apply)
}

/// Kafka consumers, per partition.
fn kafka(f: &mut Family, engine: &Engine) -> Fmt {
    let consumers = engine.kafka.consumers();
    let each = |c: &crate::ingest::kafka::Consumer| vec![("topic", c.topic.clone()), ("relation", c.stream.clone())];
    let rows = consumers.iter().map(|c| (each(c), c.stats.rows.load(Ordering::Relaxed)));
    f.counters("eddy_kafka_rows", "Rows each Kafka consumer applied.", rows)?;
    let bytes = consumers.iter().map(|c| (each(c), c.stats.bytes.load(Ordering::Relaxed)));
    f.counters("eddy_kafka_bytes", "Payload bytes each Kafka consumer read.", bytes)?;
    let mut messages = Vec::new();
    let mut errors = Vec::new();
    let mut offsets = Vec::new();
    let mut lag = Vec::new();
    for c in &consumers {
        let part = |p: i32| {
            let mut labels = each(c);
            labels.push(("partition", p.to_string()));
            labels
        };
        for (p, (m, e)) in c.partition_stats() {
            messages.push((part(p), m));
            errors.push((part(p), e));
        }
        let high = c.high_watermarks();
        for (p, o) in c.offsets() {
            offsets.push((part(p), o as f64));
            if let Some(h) = high.get(&p) {
                lag.push((part(p), (h - o).max(0) as f64));
            }
        }
    }
    f.counters("eddy_kafka_messages", "Messages read, good and bad, per partition.", messages)?;
    f.counters("eddy_kafka_errors", "Messages that did not decode, per partition.", errors)?;
    f.gauges("eddy_kafka_offset", "The next offset each consumer applies, per partition.", offsets)?;
    f.gauges("eddy_kafka_lag", "Messages behind the partition's high watermark (while the broker answers).", lag)
}

/// Kafka sinks.
fn sinks(f: &mut Family, engine: &Engine) -> Fmt {
    let all: Vec<_> = engine.sinks.list().into_iter().map(|s| (s.name.clone(), s.status())).collect();
    let messages = all.iter().map(|(n, s)| (label("sink", n), s.messages));
    f.counters("eddy_sink_messages", "Messages each sink wrote to its topic.", messages)?;
    let transactions = all.iter().map(|(n, s)| (label("sink", n), s.transactions));
    f.counters("eddy_sink_transactions", "Kafka transactions each sink committed.", transactions)?;
    let lag = all.iter().map(|(n, s)| (label("sink", n), s.lag as f64));
    f.gauges("eddy_sink_lag", "Changes each sink has yet to write.", lag)
}

/// Checkpoints and the insert log.
fn durability(f: &mut Family, engine: &Engine) -> Fmt {
    let t = engine.catalog.durability().telemetry();
    let none = || Vec::<(&'static str, String)>::new();
    f.histograms("eddy_checkpoint_duration_seconds", "Whole checkpoints.", [(none(), t.duration.snapshot())])?;
    f.histograms(
        "eddy_checkpoint_pause_seconds",
        "How long writes waited at each checkpoint's barrier.",
        [(none(), t.paused.snapshot())],
    )?;
    f.counters("eddy_checkpoint_written_bytes", "Bytes of state checkpoints wrote.", [(none(), t.bytes())])?;
    f.counters("eddy_checkpoints", "Checkpoints completed.", [(none(), t.completed())])?;
    f.counters("eddy_checkpoint_failures", "Checkpoints that failed.", [(none(), t.failed_total())])?;
    let last = t.last_success().map(|at| at as f64 / 1e6);
    f.gauges(
        "eddy_checkpoint_last_success_timestamp_seconds",
        "When the last checkpoint completed, in seconds since the Unix epoch.",
        last.map(|at| (none(), at)),
    )?;
    f.histograms("eddy_insert_log_fsync_seconds", "Each fdatasync of the insert log.", [(none(), t.fsync.snapshot())])?;
    f.histograms(
        "eddy_insert_log_group_commit_records",
        "Records made durable by each group commit of the insert log.",
        [(none(), t.group_commit.snapshot())],
    )
}

/// Connections, statements and the process.
fn server(f: &mut Family, engine: &Engine) -> Fmt {
    let s = &engine.sessions;
    let none = || Vec::<(&'static str, String)>::new();
    f.gauges("eddy_connections", "Connections served now.", [(none(), s.current() as f64)])?;
    f.counters(
        "eddy_connections_refused",
        "Connections refused for --max-connections.",
        [(none(), s.refused_total())],
    )?;
    let queries = QueryKind::ALL.iter().map(|k| (label("kind", k.name()), s.queries(*k).snapshot()));
    f.histograms("eddy_query_duration_seconds", "Statements by kind: read, write, copy, ddl or other.", queries)?;
    let memory = crate::observe::resident_bytes().map(|b| (none(), b as f64));
    f.gauges("eddy_process_resident_memory_bytes", "Resident memory of the server process.", memory)?;
    f.gauges(
        "eddy_start_time_seconds",
        "When the server started, in seconds since the Unix epoch.",
        [(none(), s.started as f64 / 1e6)],
    )?;
    let version = vec![("version", env!("CARGO_PKG_VERSION").to_string())];
    f.gauges("eddy_build_info", "Always 1; the version is a label.", [(version, 1.0)])
}
