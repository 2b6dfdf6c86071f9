//! Kafka benchmark: `cargo bench --bench kafka`.
//!
//! Throughput: 1,000,000 JSON events (about 200 bytes, 5 fields) in a topic
//! of 4 partitions, consumed into
//! - a bare librdkafka consumer that only reads them (the baseline: what the
//!   broker and the client library can deliver),
//! - a stream with no view (read and decode),
//! - a stream with a `GROUP BY` view over 10,000 keys, with one and with two
//!   partition readers.
//!
//! Upsert tables: 1,000,000 keyed messages over 100,000 keys (one in ten a
//! tombstone) into a table fed by the topic, with no view and with a
//! `GROUP BY` view, and the same messages into a stream for comparison.
//!
//! Freshness: events produced at half the view's measured rate; a client
//! polls a one-row view of `max(ts)` (the produce time each event carries)
//! and records how old the newest visible event is.
//!
//! The broker is tansu, out of process (`EDDY_TANSU`, or the copy
//! `tests/run.sh` fetches); without it, librdkafka's in-process mock broker.
//! `--quick` (and any run without cargo bench's `--bench` flag, as under
//! `cargo test --all-targets`) runs a tiny plan against the mock broker.

#[path = "../common/mod.rs"]
mod common;
#[path = "../ingest/workload/cpu.rs"]
#[allow(dead_code)]
mod cpu;
mod run;
mod tables;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let quick = has("--quick") || !(has("--bench") || has("--full"));
    let plan = if quick { run::Plan::quick() } else { run::Plan::full() };
    let started = std::time::Instant::now();
    match run::run(&plan, |step| eprintln!("[{:>6.1}s] {step}", started.elapsed().as_secs_f64())) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
