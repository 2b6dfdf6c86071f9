//! The real `eddy` binary as a child process, for tests that drive it with
//! real clients.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long the server may take to accept connections.
const SERVER_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A running `eddy` process, killed (and its data directory removed) on drop,
/// also when the test fails.
pub struct EddyProcess {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// Its own directory (log, data, client output).
    pub dir: PathBuf,
}

impl EddyProcess {
    /// Starts `eddy` on a free port. The port is found by binding port 0 and
    /// letting it go, so another process may take it first: then the server
    /// exits at once, and we try again with another port.
    pub fn start(name: &str) -> EddyProcess {
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("eddy-{name}-{}-{port}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create the test directory");
            let log = File::create(dir.join("eddy.log")).expect("create eddy.log");
            let child = Command::new(env!("CARGO_BIN_EXE_eddy"))
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--data-dir")
                .arg(dir.join("data"))
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log handle"))
                .stderr(log)
                .spawn()
                .expect("spawn the eddy binary");
            let mut server = EddyProcess { child, port, dir };
            if server.wait_until_ready() {
                return server;
            }
            last_log = server.log();
        }
        panic!("eddy did not start; its last log:\n{last_log}");
    }

    /// Waits until the port accepts connections; false if the server exited.
    fn wait_until_ready(&mut self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + SERVER_READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "eddy did not accept connections on port {} within {SERVER_READY_TIMEOUT:?}; its log:\n{}",
            self.port,
            self.log()
        );
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("eddy.log")).unwrap_or_default()
    }
}

impl Drop for EddyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- eddy log ({}) ---\n{}", self.dir.display(), self.log());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A port nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind an ephemeral port").port()
}
