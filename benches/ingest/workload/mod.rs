//! The ingest and read benchmark, as a library: `benches/ingest/main.rs`
//! runs it in full and prints the figures; `tests/bench_smoke.rs` runs the
//! quick plan so the code keeps compiling and working.
//!
//! Every case starts a fresh in-process server on 127.0.0.1:0, on its own
//! tokio runtime whose threads are named [`SERVER_THREAD`], and drives it
//! with tokio-postgres over real pgwire from the main thread. The server's
//! CPU time is read from those threads' `/proc` stat files.

pub mod cpu;
pub mod data;
pub mod ingest;
pub mod metrics_cost;
pub mod reads;
pub mod report;

use std::net::SocketAddr;
use std::time::Duration;

use eddy::{Config, Server};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

pub use ingest::{IngestResult, Method};
pub use reads::Latency;

/// Name prefix of the server runtime's threads.
pub const SERVER_THREAD: &str = "eddy-server";

/// What went wrong; the benchmark stops at the first error.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
/// A result of the benchmark.
pub type BenchResult<T> = Result<T, BenchError>;

/// How much work each case does. Every count is a maximum: a case also
/// stops (between commands) once it has run for `case_seconds_max`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The distinct keys of each run (and so the view's groups).
    pub key_counts: Vec<usize>,
    /// Rows sent by one COPY command.
    pub copy_rows_per_command: usize,
    /// Rows per COPY case.
    pub copy_rows_max: usize,
    /// Rows in one INSERT statement.
    pub insert_rows_per_statement: usize,
    /// Rows per INSERT case.
    pub insert_rows_max: usize,
    /// Wall-clock budget of one ingest case.
    pub case_seconds_max: f64,
    /// Point lookups per group count.
    pub lookups: usize,
    /// Full scans per group count, at most.
    pub scans_max: usize,
    /// Wall-clock budget of the full scans of one group count.
    pub scan_seconds_max: f64,
    /// The ingest methods run (both by default; one, to profile it).
    pub methods: Vec<Method>,
    /// Rounds of each side of the metrics-cost comparison (COPY into the
    /// view with the first key count); 0 skips it.
    pub metrics_rounds: usize,
}

impl Plan {
    /// The figures in `docs/benchmarks.md`: 10,000 and 1,000,000 keys.
    pub fn full() -> Self {
        Self {
            key_counts: vec![10_000, 1_000_000],
            copy_rows_per_command: 1_000_000,
            copy_rows_max: 10_000_000,
            insert_rows_per_statement: 1_000,
            insert_rows_max: 2_000_000,
            case_seconds_max: 40.0,
            lookups: 2_000,
            scans_max: 200,
            scan_seconds_max: 20.0,
            methods: vec![Method::Copy, Method::Insert],
            metrics_rounds: 7,
        }
    }

    /// A smoke run of a few seconds, even in a debug build.
    pub fn quick() -> Self {
        Self {
            key_counts: vec![100, 1_000],
            copy_rows_per_command: 5_000,
            copy_rows_max: 10_000,
            insert_rows_per_statement: 100,
            insert_rows_max: 1_000,
            case_seconds_max: 10.0,
            lookups: 50,
            scans_max: 5,
            scan_seconds_max: 5.0,
            methods: vec![Method::Copy, Method::Insert],
            metrics_rounds: 1,
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One entry per ingest case, baselines included.
    pub ingest: Vec<IngestResult>,
    /// Read latencies, per query and group count.
    pub reads: Vec<Latency>,
    /// What the metrics cost on ingest.
    pub metrics: Option<metrics_cost::MetricsCost>,
}

/// Runs `plan`, calling `progress` before each case.
pub fn run(plan: &Plan, mut progress: impl FnMut(&str)) -> BenchResult<Report> {
    let server_rt = tokio::runtime::Builder::new_multi_thread().thread_name(SERVER_THREAD).enable_all().build()?;
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut report = Report::default();
    for &keys in &plan.key_counts {
        progress(&format!("generating data for {keys} keys"));
        let data = &ingest::Data::generate(plan, keys);
        for &method in &plan.methods {
            for with_view in [false, true] {
                let what = if with_view { "view" } else { "no view (baseline)" };
                progress(&format!("{method:?}, {keys} keys, {what}"));
                // Reads run after the COPY into the view, over its groups.
                let reads = with_view && method == Method::Copy;
                let (result, latencies) =
                    run_case(&server_rt, &client_rt, Config::default(), |client, _| async move {
                        let result = ingest::measure(&client, plan, data, method, with_view).await?;
                        let latencies = match reads {
                            true => reads::measure(&client, plan, keys, result.rows).await?,
                            false => Vec::new(),
                        };
                        Ok((result, latencies))
                    })?;
                report.ingest.push(result);
                report.reads.extend(latencies);
            }
        }
        if plan.metrics_rounds > 0 && report.metrics.is_none() {
            progress(&format!("metrics off and on, COPY, {keys} keys, {} rounds", plan.metrics_rounds));
            let cost = metrics_cost::measure(&server_rt, &client_rt, plan, data, plan.metrics_rounds)?;
            report.metrics = Some(cost);
        }
    }
    Ok(report)
}

/// Starts a fresh server with `config`, runs `case` with a client connected
/// to it (and the server's HTTP address, if it serves one), and shuts the
/// server down.
fn run_case<T, F, Fut>(server_rt: &Runtime, client_rt: &Runtime, config: Config, case: F) -> BenchResult<T>
where
    F: FnOnce(Client, Option<SocketAddr>) -> Fut,
    Fut: Future<Output = BenchResult<T>>,
{
    let config = Config { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..config };
    // Entering the server runtime makes the server spawn its tasks there.
    let server = server_rt.block_on(Server::start(config))?;
    let port = server.local_addr().port();
    let http = server.http_addr();
    let outcome = client_rt.block_on(async {
        let (client, connection) = connect(port).await?;
        let outcome = case(client, http).await; // drops the client: the connection ends
        let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
        outcome
    });
    server_rt.block_on(server.shutdown());
    outcome
}

async fn connect(port: u16) -> BenchResult<(Client, JoinHandle<()>)> {
    let conn_str = format!("host=127.0.0.1 port={port} user=eddy dbname=eddy");
    let (client, connection) = tokio_postgres::connect(&conn_str, NoTls).await?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, connection))
}
