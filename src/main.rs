//! The `eddy` command: `eddy` or `eddy serve` runs the server;
//! `eddy generate` produces events to a Kafka topic.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use eddy::Server;
use eddy::server::config::{self, Config};
use tracing_subscriber::EnvFilter;

/// A streaming SQL database served over the PostgreSQL wire protocol.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Produce generated events to a Kafka topic.
    Generate(GenerateArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct GenerateArgs {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic to produce to (created if missing).
    #[arg(long)]
    topic: String,
    /// Messages to produce.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Messages per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Partitions, if the topic is created.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Distinct user_id values.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Sequence number of the first message (to continue an earlier run).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Message format: json, csv or text.
    #[arg(long, default_value = "json")]
    format: String,
    /// Event schema: `logs`; `customers`, keyed messages with tombstones for
    /// a table fed by the topic; `orders`, the orders of those customers;
    /// or Nexmark's events as JSON: `nexmark`
    /// (bids), `nexmark-bid`, `nexmark-auction` or `nexmark-person`.
    #[arg(long, default_value = "logs")]
    schema: String,
}

async fn generate(args: GenerateArgs) -> std::process::ExitCode {
    let job = eddy::generate::Generate {
        brokers: args.brokers,
        topic: args.topic,
        partitions: args.partitions,
        count: args.count,
        rate: (args.rate > 0).then_some(args.rate),
        keys: args.keys,
        start: args.start,
        format: args.format,
        schema: args.schema,
    };
    match eddy::generate::run(job).await {
        Ok(n) => {
            println!("produced {n} messages");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eddy generate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
struct ServeArgs {
    /// Address to accept PostgreSQL connections on.
    #[arg(long, default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Directory for state: the catalog, the views' checkpoints and the insert log.
    #[arg(long, default_value = config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Keep everything in memory: nothing survives a restart.
    #[arg(long, conflicts_with = "data_dir")]
    ephemeral: bool,
    /// Milliseconds between checkpoints.
    #[arg(long, default_value_t = config::DEFAULT_CHECKPOINT_INTERVAL.as_millis() as u64)]
    checkpoint_interval_ms: u64,
    /// Connections served at once; one more is refused at once with 53300.
    #[arg(long, default_value_t = config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Milliseconds a connection may take to finish startup (authentication
    /// included) before it is closed.
    #[arg(long, default_value_t = config::DEFAULT_STARTUP_TIMEOUT.as_millis() as u64)]
    startup_timeout_ms: u64,
    /// Close a session that waits this many milliseconds for its client with
    /// no statement running (PostgreSQL's idle_session_timeout); 0 never does.
    #[arg(long, default_value_t = 0)]
    idle_session_timeout_ms: u64,
    /// Every session's statement_timeout to start with, in milliseconds
    /// (sessions may SET their own); 0 is none.
    #[arg(long, default_value_t = 0)]
    statement_timeout_ms: u64,
    /// Memory all running client queries may hold together, in MiB; a query
    /// that needs more fails with 53200.
    #[arg(long, default_value_t = config::DEFAULT_MAX_QUERY_MEMORY / (1024 * 1024))]
    max_query_memory_mb: usize,
    /// State the views and tables may hold, in MiB, as their estimates
    /// measure it; past it INSERT, COPY and UPDATE fail with 53200 and
    /// Kafka consumers pause until there is room. 0 is no limit.
    #[arg(long, default_value_t = 0)]
    max_state_memory_mb: u64,
    /// Longest query string accepted, in bytes.
    #[arg(long, default_value_t = config::DEFAULT_MAX_QUERY_BYTES)]
    max_query_bytes: usize,
    /// Most decoded rows a single COPY may hold before it is applied, in bytes.
    #[arg(long, default_value_t = config::DEFAULT_COPY_MAX_BYTES)]
    copy_max_bytes: usize,
    /// Longest single COPY record (one line, or one CSV record with its
    /// quoted newlines), in bytes; a longer one fails the COPY with 54000.
    #[arg(long, default_value_t = eddy::ingest::decode::DEFAULT_MAX_RECORD_BYTES)]
    max_record_bytes: usize,
    /// Run on a manual clock that stands still until `eddy_set_clock` or
    /// `eddy_advance_clock` moves it (for tests of windows).
    #[arg(long)]
    manual_clock: bool,
    /// A TOML file with users, the password method and TLS (see
    /// docs/operations.md); without it, every connection is trusted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to serve Prometheus metrics (/metrics), the status page (/) and
    /// its JSON (/api/status), as HOST:PORT; `off` serves none of them.
    #[arg(long, default_value = config::DEFAULT_HTTP, value_parser = parse_http)]
    http: HttpAddr,
    /// Log lines as plain text, or as one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `--http`: an address, or off.
#[derive(Debug, Clone, Copy)]
struct HttpAddr(Option<SocketAddr>);

fn parse_http(text: &str) -> Result<HttpAddr, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(HttpAddr(None));
    }
    text.parse().map(|a| HttpAddr(Some(a))).map_err(|e| format!("{e}: give HOST:PORT (say 127.0.0.1:8432), or off"))
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl ServeArgs {
    fn config(self) -> Result<Config, eddy::auth::AuthError> {
        let auth = match &self.config {
            Some(path) => eddy::auth::AuthConfig::load(path)?,
            None => eddy::auth::AuthConfig::default(),
        };
        Ok(Config {
            listen: self.listen,
            data_dir: (!self.ephemeral).then_some(self.data_dir),
            checkpoint_interval: std::time::Duration::from_millis(self.checkpoint_interval_ms),
            max_connections: self.max_connections,
            startup_timeout: std::time::Duration::from_millis(self.startup_timeout_ms),
            idle_session_timeout: (self.idle_session_timeout_ms > 0)
                .then(|| std::time::Duration::from_millis(self.idle_session_timeout_ms)),
            statement_timeout: (self.statement_timeout_ms > 0)
                .then(|| std::time::Duration::from_millis(self.statement_timeout_ms)),
            max_query_memory: self.max_query_memory_mb.saturating_mul(1024 * 1024),
            max_state_memory: (self.max_state_memory_mb > 0)
                .then(|| self.max_state_memory_mb.saturating_mul(1024 * 1024)),
            max_query_bytes: self.max_query_bytes,
            copy_max_bytes: self.copy_max_bytes,
            max_record_bytes: self.max_record_bytes,
            manual_clock: self.manual_clock.then(|| chrono::Utc::now().timestamp_micros()),
            auth,
            http: self.http.0,
            ..Config::default()
        })
    }
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// Each runtime thread's stack. Planning recurses over the statement's
/// tree; with [`eddy::sql::complexity`] bounding its depth, this leaves a
/// wide margin (the default is 2 MiB). Untouched stack costs no memory.
const THREAD_STACK_BYTES: usize = 32 * 1024 * 1024;

fn main() -> std::process::ExitCode {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(THREAD_STACK_BYTES).build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("eddy could not start its runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        Some(Command::Generate(args)) => {
            init_logs(LogFormat::Text);
            return generate(args).await;
        }
        None => cli.serve,
    };
    init_logs(args.log_format);
    // Nobody can read the HTTP-only figures without the HTTP side.
    eddy::observe::set_enabled(args.http.0.is_some());
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "eddy could not start");
            return std::process::ExitCode::FAILURE;
        }
    };
    let server = match Server::start(config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "eddy could not start");
            return std::process::ExitCode::FAILURE;
        }
    };
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
