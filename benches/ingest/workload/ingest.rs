//! Ingest cases: COPY FROM STDIN and multi-row INSERT, into a stream that
//! feeds the view or (the baseline) into one that feeds nothing.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::cpu::{self, CpuUsed};
use super::{BenchResult, Plan, SERVER_THREAD, data};

/// The stream every case writes.
pub const CREATE_STREAM: &str = "CREATE STREAM s (k int, v float8)";
/// The view of the cases "with view".
pub const CREATE_VIEW: &str = "CREATE VIEW v AS SELECT k, count(*), sum(v), avg(v) FROM s GROUP BY k";

/// Bytes per CopyData message (libpq-like: the client streams small pieces).
const COPY_MESSAGE_BYTES: usize = 64 * 1024;
/// Distinct COPY payloads generated per case; they are sent in turn.
const DISTINCT_PAYLOADS_MAX: usize = 3;
/// Distinct INSERT statements generated per case: enough for every key of
/// the full plan to occur (1,000 statements of 1,000 rows cover 1,000,000).
const DISTINCT_STATEMENTS_MAX: usize = 1_000;

/// How rows are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `COPY s (k, v) FROM STDIN`, text format.
    Copy,
    /// `INSERT INTO s (k, v) VALUES (..), (..), ...` over the simple protocol.
    Insert,
}

/// One ingest case's figures.
#[derive(Debug, Clone)]
pub struct IngestResult {
    /// COPY or INSERT.
    pub method: Method,
    /// Distinct keys in the data.
    pub keys: usize,
    /// Whether the stream fed the view (false: the baseline).
    pub with_view: bool,
    /// Rows acknowledged by the server.
    pub rows: u64,
    /// Wall-clock time from the first command to the last acknowledgement.
    pub wall: Duration,
    /// CPU spent meanwhile.
    pub cpu: CpuUsed,
    /// Groups in the view afterwards (`None` for the baseline).
    pub groups: Option<i64>,
    /// Resident memory of the process afterwards.
    pub rss_mib: u64,
}

impl IngestResult {
    /// Rows per wall-clock second.
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Rows per CPU-second of the server's threads: rows per second per
    /// core. `None` when the run was too short to measure CPU (10 ms ticks).
    pub fn rows_per_server_cpu_second(&self) -> Option<f64> {
        per_cpu_second(self.rows, self.cpu.server)
    }

    /// Rows per CPU-second of the whole process, client included.
    pub fn rows_per_process_cpu_second(&self) -> Option<f64> {
        per_cpu_second(self.rows, self.cpu.process)
    }

    /// Server CPU nanoseconds per row.
    pub fn server_ns_per_row(&self) -> Option<f64> {
        per_cpu_second(self.rows, self.cpu.server).map(|r| 1e9 / r)
    }
}

fn per_cpu_second(rows: u64, cpu: Duration) -> Option<f64> {
    (!cpu.is_zero()).then(|| rows as f64 / cpu.as_secs_f64())
}

/// The generated rows of one key count.
#[derive(Debug, Clone)]
pub struct Data {
    /// Distinct keys.
    pub keys: usize,
    copy: Vec<Bytes>,
    copy_rows_per_payload: u64,
    inserts: Vec<String>,
    insert_rows_per_statement: u64,
}

impl Data {
    /// Generates the COPY payloads and INSERT statements of `plan` for `keys`.
    pub fn generate(plan: &Plan, keys: usize) -> Self {
        let copies = plan.copy_rows_max.div_ceil(plan.copy_rows_per_command);
        let statements = plan.insert_rows_max.div_ceil(plan.insert_rows_per_statement);
        let seed = keys as u64;
        Self {
            keys,
            copy: data::copy_payloads(keys, plan.copy_rows_per_command, copies.clamp(1, DISTINCT_PAYLOADS_MAX), seed),
            copy_rows_per_payload: plan.copy_rows_per_command as u64,
            inserts: data::insert_statements(
                keys,
                plan.insert_rows_per_statement,
                statements.clamp(1, DISTINCT_STATEMENTS_MAX),
                seed + 1,
            ),
            insert_rows_per_statement: plan.insert_rows_per_statement as u64,
        }
    }
}

/// Creates the stream (and the view when `with_view`), sends rows by
/// `method` until the plan's rows or time run out, and measures.
pub async fn measure(
    client: &Client,
    plan: &Plan,
    data: &Data,
    method: Method,
    with_view: bool,
) -> BenchResult<IngestResult> {
    client.batch_execute(CREATE_STREAM).await?;
    if with_view {
        client.batch_execute(CREATE_VIEW).await?;
    }
    let budget = Duration::from_secs_f64(plan.case_seconds_max);
    let cpu_before = cpu::sample(SERVER_THREAD);
    let start = Instant::now();
    let rows = match method {
        Method::Copy => copy_rows(client, data, plan.copy_rows_max as u64, start, budget).await?,
        Method::Insert => insert_rows(client, data, plan.insert_rows_max as u64, start, budget).await?,
    };
    let wall = start.elapsed();
    let cpu = cpu::sample(SERVER_THREAD).since(&cpu_before);
    let groups = match with_view {
        true => Some(count_groups(client).await?),
        false => None,
    };
    Ok(IngestResult { method, keys: data.keys, with_view, rows, wall, cpu, groups, rss_mib: cpu::rss_mib() })
}

async fn copy_rows(client: &Client, data: &Data, rows_max: u64, start: Instant, budget: Duration) -> BenchResult<u64> {
    let mut rows = 0;
    for payload in data.copy.iter().cycle() {
        if rows >= rows_max || (rows > 0 && start.elapsed() >= budget) {
            break;
        }
        let sink = client.copy_in("COPY s (k, v) FROM STDIN").await?;
        let mut sink = std::pin::pin!(sink);
        let mut offset = 0;
        while offset < payload.len() {
            let end = (offset + COPY_MESSAGE_BYTES).min(payload.len());
            sink.feed(payload.slice(offset..end)).await?;
            offset = end;
        }
        let copied = sink.as_mut().finish().await?;
        if copied != data.copy_rows_per_payload {
            return Err(format!("COPY reported {copied} rows, sent {}", data.copy_rows_per_payload).into());
        }
        rows += copied;
    }
    Ok(rows)
}

async fn insert_rows(
    client: &Client,
    data: &Data,
    rows_max: u64,
    start: Instant,
    budget: Duration,
) -> BenchResult<u64> {
    let mut rows = 0;
    for statement in data.inserts.iter().cycle() {
        if rows >= rows_max || (rows > 0 && start.elapsed() >= budget) {
            break;
        }
        let messages = client.simple_query(statement).await?;
        let inserted = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        });
        if inserted != Some(data.insert_rows_per_statement) {
            return Err(format!("INSERT reported {inserted:?} rows, sent {}", data.insert_rows_per_statement).into());
        }
        rows += data.insert_rows_per_statement;
    }
    Ok(rows)
}

async fn count_groups(client: &Client) -> BenchResult<i64> {
    let row = client.query_one("SELECT count(*) FROM v", &[]).await?;
    Ok(row.try_get(0)?)
}
