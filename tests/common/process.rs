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
    /// Extra arguments it was started with.
    args: Vec<String>,
}

impl EddyProcess {
    /// Starts `eddy` with extra arguments (for example a checkpoint interval).
    pub fn start_with(name: &str, args: &[&str]) -> EddyProcess {
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("eddy-{name}-{}-{port}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create the test directory");
            File::create(dir.join("eddy.log")).expect("create eddy.log");
            let placeholder = Command::new("true").spawn().expect("spawn true");
            let args = args.iter().map(|a| a.to_string()).collect();
            let mut server = EddyProcess { child: placeholder, port, dir, args };
            server.child = server.spawn(&port.to_string());
            if server.wait_until_ready() {
                return server;
            }
            last_log = server.log();
        }
        panic!("eddy did not start; its last log:\n{last_log}");
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `kill -9`: no shutdown, no last checkpoint.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits for a clean exit (the shutdown checkpoint included).
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for eddy") {
                assert!(status.success(), "eddy exited with {status:?} after SIGTERM; its log:\n{}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "eddy did not stop within 30 s of SIGTERM; its log:\n{}", self.log());
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port and data directory, after a
    /// `kill9` (or a crash); panics if it does not come up.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = self.spawn(&self.port.to_string());
        if !self.wait_until_ready() {
            panic!("eddy did not restart; its log:\n{}", self.log());
        }
    }

    /// Starts the server again and expects it to refuse: returns its log.
    pub fn restart_expecting_failure(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = self.spawn(&self.port.to_string());
        let status = self.child.wait().expect("wait for eddy");
        assert!(!status.success(), "eddy started on a data directory it should refuse");
        self.log()
    }

    fn spawn(&self, port: &str) -> Child {
        let log =
            fs::OpenOptions::new().create(true).append(true).open(self.dir.join("eddy.log")).expect("open eddy.log");
        Command::new(env!("CARGO_BIN_EXE_eddy"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(http_arg(&self.args))
            .args(&self.args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn the eddy binary")
    }

    /// Starts `eddy` on a free port. The port is found by binding port 0 and
    /// letting it go, so another process may take it first: then the server
    /// exits at once, and we try again with another port.
    pub fn start(name: &str) -> EddyProcess {
        Self::start_with(name, &[])
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

/// `--http` on a port of its own, unless the test chose one: processes run
/// side by side, so the default port would clash.
fn http_arg(args: &[String]) -> Vec<&'static str> {
    match args.iter().any(|a| a == "--http") {
        true => vec![],
        false => vec!["--http", "127.0.0.1:0"],
    }
}
