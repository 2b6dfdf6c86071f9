//! End to end against a real, out-of-process Kafka broker (tansu), the real
//! `eddy` binary and real psql:
//!
//! 1. `eddy generate` produces 100,000 JSON messages over 4 partitions;
//! 2. psql runs PipelineDB's pipeline_kafka script verbatim
//!    (`sql/examples/pipeline_kafka.sql`, broker `localhost:9092`);
//! 3. the count must reach exactly 100,000;
//! 4. 10,000 more are produced, and the count must follow to 110,000.
//!
//! tansu is fetched by `tests/run.sh` (a static build shipped in a PyPI
//! wheel) and found through `EDDY_TANSU`; without it this test fails. The
//! script names `localhost:9092`, so the broker takes that port.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::EddyProcess;
use common::tansu::{generate as produce, start_tansu};

/// The broker's address, as the script names it.
const BROKER_PORT: u16 = 9092;
/// How long the count may take to reach its expected value.
const CATCH_UP: Duration = Duration::from_secs(120);

fn psql(server: &EddyProcess) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "eddy", "-d", "eddy", "-p"])
        .arg(server.port.to_string());
    cmd
}

fn count(server: &EddyProcess) -> Option<i64> {
    let out = psql(server).args(["-tA", "-c", "SELECT count FROM message_count"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn wait_for_count(server: &EddyProcess, expected: i64) {
    let start = Instant::now();
    loop {
        let got = count(server);
        if got == Some(expected) {
            return;
        }
        assert!(start.elapsed() < CATCH_UP, "message_count is {got:?}, expected {expected}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn pipeline_kafka_script_verbatim_against_tansu() {
    let _tansu = start_tansu("localhost", BROKER_PORT);
    produce(&format!("localhost:{BROKER_PORT}"), "logs", 100_000, 0);
    let server = EddyProcess::start("kafka-e2e");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/examples/pipeline_kafka.sql");
    let out = psql(&server).arg("-f").arg(&script).output().expect("run psql");
    assert!(
        out.status.success(),
        "the script failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("CREATE VIEW") && printed.contains("success"), "{printed}");
    wait_for_count(&server, 100_000);
    produce(&format!("localhost:{BROKER_PORT}"), "logs", 10_000, 100_000);
    wait_for_count(&server, 110_000);
    // Nothing more arrives: the count stays exact.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&server), Some(110_000));
}
