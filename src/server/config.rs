//! Server configuration: typed, validated, with every default in one place.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The address `eddy` listens on when `--listen` is not given: PostgreSQL's
/// port on loopback, so `psql -h 127.0.0.1` finds it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5432";
/// Where `eddy` serves `/metrics` and the status page unless `--http` says.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8432";
/// The data directory when `eddy` is run without `--data-dir`.
pub const DEFAULT_DATA_DIR: &str = "eddy-data";
/// How often a checkpoint is taken unless `--checkpoint-interval-ms` says otherwise.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How often expired window steps and groups past a TTL are removed.
pub const DEFAULT_EXPIRY_INTERVAL: Duration = Duration::from_secs(1);
/// Connections served at once; more are refused with 53300.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Memory all running client queries may hold together: 4 GiB.
pub const DEFAULT_MAX_QUERY_MEMORY: usize = 4 * 1024 * 1024 * 1024;
/// How long a connection may take to finish startup (authentication included).
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest query string accepted.
pub const DEFAULT_MAX_QUERY_BYTES: usize = 16 * 1024 * 1024;
/// Most decoded rows one COPY may hold before it is applied.
pub const DEFAULT_COPY_MAX_BYTES: usize = 1024 * 1024 * 1024;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to accept PostgreSQL connections.
    pub listen: SocketAddr,
    /// Where state lives; `None` keeps everything in memory (tests, benchmarks).
    pub data_dir: Option<PathBuf>,
    /// How often a checkpoint is taken.
    pub checkpoint_interval: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a connection may take to finish startup.
    pub startup_timeout: Duration,
    /// Close a session that waits this long for its client; `None` never does.
    pub idle_session_timeout: Option<Duration>,
    /// Every session's `statement_timeout` to start with; `None` is none.
    pub statement_timeout: Option<Duration>,
    /// Memory all running client queries may hold together, in bytes.
    pub max_query_memory: usize,
    /// State the views and tables may hold before writes are refused, in
    /// bytes (see `crate::observe::budget`); `None` is no limit.
    pub max_state_memory: Option<u64>,
    /// Longest query string accepted, in bytes.
    pub max_query_bytes: usize,
    /// Most decoded rows one COPY may hold, in bytes.
    pub copy_max_bytes: usize,
    /// Longest single COPY record (a line, or a CSV record), in bytes.
    pub max_record_bytes: usize,
    /// DataFusion partitions for client queries.
    pub query_partitions: usize,
    /// Start a manual clock at this time (microseconds since the epoch)
    /// instead of using the system clock; tests move it with SQL.
    pub manual_clock: Option<i64>,
    /// How often expired window steps and groups past a TTL are removed.
    pub expiry_interval: Duration,
    /// Users, password method and TLS (`--config`); trust by default.
    pub auth: crate::auth::AuthConfig,
    /// Where to serve `/metrics`, `/api/status` and the status page;
    /// `None`: nowhere (`--http off`, and the default for embedded servers).
    pub http: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 5432))),
            data_dir: None,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            idle_session_timeout: None,
            statement_timeout: None,
            max_query_memory: DEFAULT_MAX_QUERY_MEMORY,
            max_state_memory: None,
            max_query_bytes: DEFAULT_MAX_QUERY_BYTES,
            copy_max_bytes: DEFAULT_COPY_MAX_BYTES,
            max_record_bytes: crate::ingest::decode::DEFAULT_MAX_RECORD_BYTES,
            query_partitions: 1,
            manual_clock: None,
            expiry_interval: DEFAULT_EXPIRY_INTERVAL,
            auth: crate::auth::AuthConfig::default(),
            http: None,
        }
    }
}

impl Config {
    /// Checks the values make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        if self.max_query_bytes < 1024 {
            return Err("--max-query-bytes must be at least 1024".into());
        }
        if self.checkpoint_interval < Duration::from_millis(10) {
            return Err("--checkpoint-interval-ms must be at least 10".into());
        }
        if self.query_partitions == 0 {
            return Err("query partitions must be at least 1".into());
        }
        let open_http = self.http.is_some_and(|a| !a.ip().is_loopback());
        if open_http && !self.auth.users.is_empty() && self.auth.http_token.is_none() {
            return Err("with users configured, --http on a non-loopback address needs a token: set [http] token in the --config file, bind it to 127.0.0.1, or turn it off with --http off".into());
        }
        Ok(())
    }
}
