//! What the metrics cost on ingest: the same COPY into the view, with the
//! HTTP-only figures off (`eddy::observe::set_enabled(false)`, as `eddy
//! --http off` runs), on, and on with `/metrics` scraped every second
//! meanwhile (a tight Prometheus interval, and what the status page polls).
//! The rounds rotate through the three, so that drift on a shared machine
//! touches each alike; the median of each side is compared.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use eddy::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ingest::{self, Data, IngestResult, Method};
use super::{BenchResult, Plan, Runtime, run_case};

/// How often the scraped side scrapes `/metrics`.
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

/// One side's rounds.
#[derive(Debug, Clone, Default)]
pub struct MetricsCost {
    /// Keys in the data.
    pub keys: usize,
    /// Each round with the figures off.
    pub off: Vec<IngestResult>,
    /// Each round with the figures on.
    pub on: Vec<IngestResult>,
    /// Each round with the figures on and scraped.
    pub scraped: Vec<IngestResult>,
    /// Scrapes answered during the scraped rounds.
    pub scrapes: u64,
    /// What the figures add to one write of a COPY batch, measured
    /// directly: nanoseconds with them off, and on.
    pub per_batch_ns: (f64, f64),
}

impl MetricsCost {
    /// The median rows per second of `rounds`.
    pub fn median(rounds: &[IngestResult]) -> f64 {
        let mut rates: Vec<f64> = rounds.iter().map(IngestResult::rows_per_second).collect();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied().unwrap_or(0.0)
    }

    /// The median server CPU nanoseconds per row of `rounds`.
    pub fn median_cpu_ns(rounds: &[IngestResult]) -> f64 {
        let mut ns: Vec<f64> = rounds.iter().filter_map(IngestResult::server_ns_per_row).collect();
        ns.sort_by(f64::total_cmp);
        ns.get(ns.len() / 2).copied().unwrap_or(0.0)
    }

    /// The figures' direct cost per COPY batch as a share of the time the
    /// "off" rounds took per batch of [`BATCH_ROWS`] rows, in percent.
    pub fn direct_percent(&self) -> f64 {
        let batch_ns = 1e9 * BATCH_ROWS as f64 / Self::median(&self.off).max(1.0);
        100.0 * (self.per_batch_ns.1 - self.per_batch_ns.0) / batch_ns
    }

    /// How much slower `side` ran than "off", in percent (negative: faster).
    pub fn cost_percent(&self, side: &[IngestResult]) -> f64 {
        let (off, on) = (Self::median(&self.off), Self::median(side));
        if off > 0.0 { 100.0 * (off - on) / off } else { 0.0 }
    }
}

/// Runs `rounds` rounds of each side.
pub fn measure(
    server_rt: &Runtime,
    client_rt: &Runtime,
    plan: &Plan,
    data: &Data,
    rounds: usize,
) -> BenchResult<MetricsCost> {
    let mut cost = MetricsCost { keys: data.keys, ..MetricsCost::default() };
    let sides = [(false, false), (true, false), (true, true)];
    for round in 0..rounds {
        // Each round starts with another side: order must not favour one.
        for k in 0..sides.len() {
            let (on, scraped) = sides[(round + k) % sides.len()];
            eddy::observe::set_enabled(on);
            let http = scraped.then(|| SocketAddr::from(([127, 0, 0, 1], 0)));
            let config = Config { http, ..Config::default() };
            let scrapes = Arc::new(AtomicU64::new(0));
            let counted = scrapes.clone();
            let result = run_case(server_rt, client_rt, config, move |client, http| async move {
                let stop = Arc::new(AtomicBool::new(false));
                let scraper = http.map(|addr| tokio::spawn(scrape(addr, stop.clone(), counted)));
                let result = ingest::measure(&client, plan, data, Method::Copy, true).await;
                stop.store(true, Ordering::Relaxed);
                if let Some(scraper) = scraper {
                    let _ = scraper.await;
                }
                result
            });
            eddy::observe::set_enabled(true);
            let result = result?;
            match (on, scraped) {
                (false, _) => cost.off.push(result),
                (true, false) => cost.on.push(result),
                (true, true) => cost.scraped.push(result),
            }
            cost.scrapes += scrapes.load(Ordering::Relaxed);
        }
    }
    cost.per_batch_ns = (per_batch_ns(false), per_batch_ns(true));
    Ok(cost)
}

/// Rows in one decoded COPY batch.
const BATCH_ROWS: usize = eddy::ingest::decode::BATCH_ROWS;

/// Nanoseconds of what the figures do for one write of a COPY batch into a
/// stream with one view (the stream's and the view's rows, bytes and last
/// change, the view's apply-latency histogram), with them `on` or off;
/// the average of many.
fn per_batch_ns(on: bool) -> f64 {
    use datafusion::arrow::array::{Float64Array, Int32Array, RecordBatch};
    let k = Int32Array::from_iter_values((0..BATCH_ROWS as i32).map(|i| i % 10_000));
    let v = Float64Array::from_iter_values((0..BATCH_ROWS).map(|i| i as f64));
    let Ok(batch) = RecordBatch::try_from_iter([("k", Arc::new(k) as _), ("v", Arc::new(v) as _)]) else {
        return f64::NAN;
    };
    let (stream, view) = (eddy::observe::Traffic::default(), eddy::observe::Traffic::default());
    let apply = eddy::observe::Histogram::latency();
    eddy::observe::set_enabled(on);
    const WRITES: u32 = 200_000;
    let started = std::time::Instant::now();
    for _ in 0..WRITES {
        // As a write does: the stream counts the batch, the view its rows
        // and how long the apply took (the clock is read either way).
        let applying = std::time::Instant::now();
        stream.count_batch(std::hint::black_box(&batch));
        view.count(std::hint::black_box(BATCH_ROWS as u64), 0);
        apply.observe_duration(applying.elapsed());
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(WRITES);
    eddy::observe::set_enabled(true);
    std::hint::black_box((stream.rows(), view.bytes(), apply.snapshot()));
    ns
}

/// GETs `/metrics` every [`SCRAPE_EVERY`] until `stop`, counting the
/// answers.
async fn scrape(addr: SocketAddr, stop: Arc<AtomicBool>, scrapes: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        if get_metrics(addr).await.is_ok_and(|body| body.contains("eddy_stream_rows_total")) {
            scrapes.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(SCRAPE_EVERY).await;
    }
}

async fn get_metrics(addr: SocketAddr) -> std::io::Result<String> {
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let mut body = String::new();
    socket.read_to_string(&mut body).await?;
    Ok(body)
}
