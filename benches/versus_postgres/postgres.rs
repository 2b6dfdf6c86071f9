//! The PostgreSQL server the comparison runs against: PostgreSQL 15 from
//! Debian, initialized and started by the benchmark on a temporary
//! directory, on loopback, and stopped (fast shutdown) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, BenchResult};

/// A PostgreSQL server of our own on a temporary directory.
pub struct Postgres {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl Postgres {
    pub fn start() -> BenchResult<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| {
                format!("PostgreSQL is not installed (/usr/lib/postgresql: {e}); tests/run.sh installs postgresql-15")
            })?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("postgres").exists())
            .ok_or("no /usr/lib/postgresql/*/bin/postgres; tests/run.sh installs postgresql-15")?;
        let dir = std::env::temp_dir().join(format!("eddy-versus-postgres-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // PostgreSQL refuses to run as root: as root, run it as `postgres`.
        let ids = if is_root() { Some(postgres_ids().ok_or("no postgres user in /etc/passwd")?) } else { None };
        let as_postgres = |program: &Path| {
            let mut c = Command::new(program);
            if let Some((uid, gid)) = ids {
                use std::os::unix::process::CommandExt;
                c.uid(uid).gid(gid);
            }
            c
        };
        if ids.is_some() {
            let status = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status()?;
            if !status.success() {
                return Err("chown of the PostgreSQL directory failed".into());
            }
        }
        let data = dir.join("data");
        let status = as_postgres(&bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            return Err("initdb failed".into());
        }
        let child = as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-k"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("postgres.log"))?)
            .spawn()?;
        let pg = Self { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("PostgreSQL did not start within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        Ok(pg)
    }

    pub fn conn(&self, db: &str) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname={db}", self.port)
    }

    /// Resident memory of the server and its backends.
    pub fn memory(&self) -> i64 {
        let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
        let root = self.child.id();
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid == root || descends_from(pid, root))
            .map(common::rss_bytes)
            .sum()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown.
        let _ = Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `postgres` user's uid and gid.
fn postgres_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:").map(|v| v.split_whitespace().next() == Some("0"))))
        .unwrap_or(false)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()
}

fn descends_from(pid: u32, root: u32) -> bool {
    let mut at = pid;
    for _ in 0..8 {
        match parent_of(at) {
            Some(p) if p == root => return true,
            Some(p) if p > 1 => at = p,
            _ => return false,
        }
    }
    false
}
