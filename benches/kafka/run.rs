//! The Kafka benchmark's cases and its report.

use std::error::Error;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use eddy::generate::{Generate, run as produce};
use eddy::{Config, Server};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls};

use crate::cpu;
use crate::tables::{self, Into, TABLE_TOPIC};

use crate::common::BenchResult;
use crate::common::broker::Broker;

pub type DynError = Box<dyn Error + Send + Sync>;

/// The server's runtime threads carry this name.
pub const SERVER_THREAD: &str = "eddy-server";
const TOPIC: &str = "bench_logs";
const FRESH_TOPIC: &str = "bench_fresh";
/// How long consumption may take before the case fails.
const DEADLINE: Duration = Duration::from_secs(600);

/// What to run.
pub struct Plan {
    messages: u64,
    keys: u64,
    partitions: i32,
    freshness: Duration,
    /// Fixed rates whose freshness is measured, besides half the measured maximum.
    fresh_rates: Vec<u64>,
    tansu: bool,
    /// Keyed messages for the upsert-table cases, and their distinct keys.
    pub table_messages: u64,
    pub table_keys: u64,
}

impl Plan {
    /// The figures in docs/benchmarks.md.
    pub fn full() -> Self {
        Self {
            messages: 1_000_000,
            keys: 10_000,
            partitions: 4,
            freshness: Duration::from_secs(10),
            fresh_rates: vec![10_000, 100_000],
            tansu: true,
            table_messages: 1_000_000,
            table_keys: 100_000,
        }
    }

    /// Seconds, for the smoke test.
    pub fn quick() -> Self {
        Self {
            messages: 20_000,
            keys: 1_000,
            partitions: 4,
            freshness: Duration::from_secs(1),
            fresh_rates: Vec::new(),
            tansu: false,
            table_messages: 20_000,
            table_keys: 1_000,
        }
    }
}

/// One consumption case.
pub struct Case {
    pub label: String,
    pub elapsed: Duration,
    pub cpu: Duration,
    pub check: String,
}

impl Case {
    fn rate(&self, messages: u64) -> f64 {
        messages as f64 / self.elapsed.as_secs_f64()
    }

    fn per_cpu(&self, messages: u64) -> Option<f64> {
        (!self.cpu.is_zero()).then(|| messages as f64 / self.cpu.as_secs_f64())
    }
}

/// Runs every case and renders the report.
pub fn run(plan: &Plan, mut progress: impl FnMut(&str)) -> BenchResult<String> {
    let server_rt = tokio::runtime::Builder::new_multi_thread().thread_name(SERVER_THREAD).enable_all().build()?;
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut topics = vec![(TOPIC.to_string(), plan.partitions), (TABLE_TOPIC.to_string(), plan.partitions)];
    topics.extend((0..=plan.fresh_rates.len()).map(|i| (format!("{FRESH_TOPIC}_{i}"), plan.partitions)));
    let broker = Broker::start(plan.tansu, &topics)?;
    let brokers = broker.brokers();
    progress(&format!("producing {} messages to {}", plan.messages, broker.name()));
    let started = Instant::now();
    let job = generate(plan, &brokers, TOPIC, plan.messages, None);
    client_rt.block_on(produce(job))?;
    let produce_time = started.elapsed();
    progress(&format!("producing {} keyed messages", plan.table_messages));
    let mut keyed = generate(plan, &brokers, TABLE_TOPIC, plan.table_messages, None);
    (keyed.schema, keyed.keys) = ("customers".into(), plan.table_keys);
    client_rt.block_on(produce(keyed))?;
    let mut cases = Vec::new();
    progress("baseline: a bare librdkafka consumer");
    cases.push(raw_consume(&brokers, plan)?);
    for (view, parallelism) in [(false, 1), (true, 1), (true, 2)] {
        progress(&format!("eddy: view {view}, parallelism {parallelism}"));
        cases.push(eddy_consume(&server_rt, &client_rt, &brokers, plan, view, parallelism)?);
    }
    let mut table_cases = Vec::new();
    for into in [Into::Stream, Into::Table, Into::TableAndView] {
        progress(&format!("keyed messages into {into:?}"));
        table_cases.push(tables::consume(&server_rt, &client_rt, &brokers, plan, into)?);
    }
    let view_rate = cases[2].rate(plan.messages);
    let half = (view_rate / 2.0).max(1_000.0) as u64;
    let mut fresh = Vec::new();
    for (i, rate) in plan.fresh_rates.iter().copied().chain([half]).enumerate() {
        progress(&format!("freshness at {rate} messages/s"));
        let topic = format!("{FRESH_TOPIC}_{i}");
        fresh.push((rate, freshness(&server_rt, &client_rt, &brokers, plan, &topic, rate)?));
    }
    let mut report = render(plan, broker.name(), produce_time, &cases, &fresh);
    let _ = writeln!(
        report,
        "\n{} keyed JSON messages (`eddy generate --schema customers`, {} keys, one in ten a tombstone):\n",
        plan.table_messages, plan.table_keys
    );
    report.push_str(&case_table(&table_cases, plan.table_messages));
    Ok(report)
}

fn generate(plan: &Plan, brokers: &str, topic: &str, count: u64, rate: Option<u64>) -> Generate {
    Generate {
        brokers: brokers.to_string(),
        topic: topic.to_string(),
        partitions: plan.partitions,
        count,
        rate,
        keys: plan.keys,
        start: 0,
        format: "json".into(),
        schema: "logs".into(),
    }
}

/// Reads every message with a bare consumer, touching each payload.
fn raw_consume(brokers: &str, plan: &Plan) -> BenchResult<Case> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..plan.partitions {
        list.add_partition_offset(TOPIC, p, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    let before = cpu::sample(SERVER_THREAD);
    let started = Instant::now();
    let (mut n, mut bytes) = (0u64, 0usize);
    while n < plan.messages {
        if started.elapsed() > DEADLINE {
            return Err(format!("raw consumer read only {n} messages").into());
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            bytes += m?.payload().map_or(0, |p| p.len());
            n += 1;
        }
    }
    let elapsed = started.elapsed();
    let used = cpu::sample(SERVER_THREAD).since(&before);
    let check = format!("{n} messages, {:.0} bytes each", bytes as f64 / n as f64);
    Ok(Case { label: "bare librdkafka consumer (baseline)".into(), elapsed, cpu: used.process, check })
}

pub async fn connect(server: &Server) -> BenchResult<Client> {
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.local_addr().port());
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

const STREAM: &str = "CREATE STREAM logs (ts bigint, service text, user_id int, latency_ms float8, message text)";
const VIEW: &str = "CREATE VIEW per_user AS SELECT user_id, count(*) AS n, sum(latency_ms) AS latency, max(ts) AS last_ts \
                    FROM logs GROUP BY user_id";

pub fn start_server(server_rt: &Runtime) -> BenchResult<Server> {
    let config = Config { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..Config::default() };
    Ok(server_rt.block_on(Server::start(config))?)
}

/// Consumes the whole topic into a fresh server; times it until every
/// message is applied, and checks the view's total.
fn eddy_consume(
    server_rt: &Runtime,
    client_rt: &Runtime,
    brokers: &str,
    plan: &Plan,
    view: bool,
    parallelism: usize,
) -> BenchResult<Case> {
    let server = start_server(server_rt)?;
    let outcome = client_rt.block_on(async {
        let client = connect(&server).await?;
        client.batch_execute(STREAM).await?;
        if view {
            client.batch_execute(VIEW).await?;
        }
        client.batch_execute(&format!("SELECT pipeline_kafka.add_broker('{brokers}')")).await?;
        let before = cpu::sample(SERVER_THREAD);
        let started = Instant::now();
        client
            .batch_execute(&format!(
                "SELECT pipeline_kafka.consume_begin('{TOPIC}', 'logs', format := 'json', parallelism := {parallelism})"
            ))
            .await?;
        loop {
            let row = client.query_one("SELECT messages, errors FROM pipeline_kafka.consumers", &[]).await?;
            let (messages, errors): (i64, i64) = (row.get(0), row.get(1));
            if errors > 0 {
                return Err(format!("{errors} messages did not decode").into());
            }
            if messages as u64 >= plan.messages {
                break;
            }
            if started.elapsed() > DEADLINE {
                return Err(format!("only {messages} messages consumed").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed();
        let used = cpu::sample(SERVER_THREAD).since(&before);
        let check = if view {
            let row = client.query_one("SELECT sum(n)::bigint, count(*) FROM per_user", &[]).await?;
            let (total, groups): (i64, i64) = (row.get(0), row.get(1));
            if total as u64 != plan.messages {
                return Err(format!("the view counted {total} of {} messages", plan.messages).into());
            }
            format!("view total {total}, {groups} groups")
        } else {
            "decoded, no view".to_string()
        };
        let label = match view {
            true => format!("GROUP BY view, {} keys, {parallelism} reader(s)", plan.keys),
            false => "stream with no view (read + decode)".to_string(),
        };
        Ok::<_, DynError>(Case { label, elapsed, cpu: used.process, check })
    });
    server_rt.block_on(server.shutdown());
    outcome
}

/// Produces at `rate` for the plan's freshness duration while polling the
/// newest visible produce time; returns how old it was at each poll.
fn freshness(
    server_rt: &Runtime,
    client_rt: &Runtime,
    brokers: &str,
    plan: &Plan,
    topic: &str,
    rate: u64,
) -> BenchResult<Vec<Duration>> {
    let server = start_server(server_rt)?;
    let count = (rate as f64 * plan.freshness.as_secs_f64()) as u64;
    let job = generate(plan, brokers, topic, count, Some(rate));
    let outcome = client_rt.block_on(async {
        eddy::generate::ensure_topic(brokers, topic, plan.partitions).await?;
        let client = connect(&server).await?;
        client.batch_execute(STREAM).await?;
        client.batch_execute(VIEW).await?;
        client.batch_execute("CREATE VIEW newest AS SELECT max(ts) AS ts FROM logs").await?;
        client
            .batch_execute(&format!(
                "SELECT pipeline_kafka.add_broker('{brokers}');
                 SELECT pipeline_kafka.consume_begin('{topic}', 'logs', format := 'json', start_offset := -1);"
            ))
            .await?;
        tokio::time::sleep(Duration::from_millis(500)).await; // the consumer is assigned
        let producer = tokio::spawn(produce(job));
        let mut samples = Vec::new();
        while !producer.is_finished() {
            let newest: Option<i64> = client.query_one("SELECT ts FROM newest", &[]).await?.get(0);
            if let Some(ts) = newest {
                let now = chrono::Utc::now().timestamp_micros();
                samples.push(Duration::from_micros((now - ts).max(0) as u64));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        producer.await??;
        Ok::<_, DynError>(samples)
    });
    server_rt.block_on(server.shutdown());
    let mut samples = outcome?;
    // The first polls see nothing yet or the consumer warming up.
    let skip = samples.len() / 10;
    samples.drain(..skip);
    samples.sort();
    Ok(samples)
}

/// The cases as a Markdown table, for `n` messages each.
fn case_table(cases: &[Case], n: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| case | seconds | messages/s | messages per CPU-second | check |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    for c in cases {
        let per_cpu = c.per_cpu(n).map_or("n/a".into(), |v| format!("{v:.0}"));
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.0} | {per_cpu} | {} |",
            c.label,
            c.elapsed.as_secs_f64(),
            c.rate(n),
            c.check
        );
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn render(plan: &Plan, broker: &str, produce_time: Duration, cases: &[Case], fresh: &[(u64, Vec<Duration>)]) -> String {
    let mut out = String::new();
    let n = plan.messages;
    let _ = writeln!(out, "## Eddy Kafka benchmark\n");
    let _ = writeln!(out, "Broker: {broker}. {n} JSON messages over {} partitions.", plan.partitions);
    let _ = writeln!(
        out,
        "Producing them took {:.2} s ({:.0} messages/s).\n",
        produce_time.as_secs_f64(),
        n as f64 / produce_time.as_secs_f64()
    );
    out.push_str(&case_table(cases, n));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let _ = writeln!(out, "\n| freshness: produce rate (messages/s) | polls | p50 ms | p99 ms | max ms |");
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
    for (rate, samples) in fresh {
        let _ = writeln!(
            out,
            "| {rate} | {} | {:.1} | {:.1} | {:.1} |",
            samples.len(),
            ms(percentile(samples, 0.5)),
            ms(percentile(samples, 0.99)),
            ms(samples.last().copied().unwrap_or_default())
        );
    }
    out
}
