//! Produce-to-subscriber latency: how long after an event is sent a
//! subscriber of a view over its stream has the view's change.
//!
//! ```text
//! cargo bench --bench push            # the figures in docs/benchmarks.md
//! cargo bench --bench push -- --quick # a smoke run
//! ```
//!
//! An in-process, ephemeral server is driven over pgwire with
//! tokio-postgres. The stream is `events (k int, sent_us bigint)`, the view
//! `SELECT k, count(*) AS n, max(sent_us) AS last_sent FROM events GROUP BY
//! k` over 1,000 keys. A subscriber reads the view's changes through a
//! cursor (`DECLARE c CURSOR FOR SUBSCRIBE v WITH (snapshot = false)`, then
//! `FETCH ALL c WITH (timeout = '1s')` in a loop, as a PDO worker would);
//! for each added row, its latency is the time it arrived less `last_sent`,
//! the send time of the newest event of that key in the write.
//!
//! Events are sent at 10,000 per second, 10 every millisecond:
//!
//! - **INSERT.** One multi-row `INSERT` per millisecond, on 4 connections in
//!   turn. Its own round trip (send to acknowledgement) is the baseline, in
//!   the same run: a subscriber cannot see a write before it is applied.
//! - **Kafka.** 10 JSON messages per millisecond produced to a topic that
//!   Eddy consumes (`consume_begin`, micro-batches of up to 10 ms). The
//!   broker is tansu in the full run when installed, librdkafka's mock broker
//!   otherwise.
//!
//! The run fails unless the subscriber saw a change for every key written.

#[path = "../common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::BenchResult;
use common::broker::Broker;
use common::pg::connect;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Events per millisecond (10,000 per second).
const PER_TICK: usize = 10;
/// Keys the events spread over.
const KEYS: usize = 1_000;
/// Connections the INSERTs go out on, in turn.
const WRITERS: usize = 4;

struct Plan {
    seconds: f64,
}

fn main() -> ExitCode {
    let plan = if common::quick() { Plan { seconds: 0.5 } } else { Plan { seconds: 10.0 } };
    common::run_report("push", run(&plan))
}

async fn run(plan: &Plan) -> BenchResult<String> {
    let mut out = format!(
        "| path, {} events/s asked for {:.1} s | events/s sent | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n",
        common::thousands((PER_TICK * 1000) as f64),
        plan.seconds
    );
    let (acks, seen) = insert_case(plan).await?;
    out.push_str(&row("INSERT acknowledged (baseline)", &acks));
    out.push_str(&row("INSERT to subscriber", &seen));
    let (broker_name, seen) = kafka_case(plan).await?;
    out.push_str(&row("Kafka produce to subscriber", &seen));
    out.push_str(&format!("\nBroker: {broker_name}.\n"));
    Ok(out)
}

fn row(label: &str, samples: &Samples) -> String {
    let mut sorted = samples.latencies_us.clone();
    sorted.sort_unstable();
    let at = |q: f64| sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
    let ms = |us: i64| format!("{:.1} ms", us as f64 / 1000.0);
    format!(
        "| {label} | {} | {} | {} | {} |\n",
        common::thousands(samples.events as f64 / samples.seconds),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(sorted.last().copied().unwrap_or(0))
    )
}

#[derive(Default)]
struct Samples {
    events: usize,
    seconds: f64,
    latencies_us: Vec<i64>,
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// A server with the stream, the view and a subscriber's cursor.
async fn start() -> BenchResult<(eddy::Server, Client, Client)> {
    let (server, client) = common::pg::start().await?;
    client
        .batch_execute(
            "CREATE STREAM events (k int, sent_us bigint);
             CREATE VIEW v AS SELECT k, count(*) AS n, max(sent_us) AS last_sent FROM events GROUP BY k;",
        )
        .await?;
    let subscriber = connect(&server).await?;
    subscriber.batch_execute("DECLARE c CURSOR FOR SUBSCRIBE v WITH (snapshot = false)").await?;
    Ok((server, client, subscriber))
}

/// Reads the subscription until `done` says the writer stopped and nothing
/// more comes; returns the latency of every added row.
async fn subscribe(subscriber: Client, done: tokio::sync::watch::Receiver<bool>) -> BenchResult<Vec<i64>> {
    let mut latencies = Vec::new();
    loop {
        let messages = subscriber.simple_query("FETCH ALL c WITH (timeout = '200ms')").await?;
        let arrived = now_us();
        let mut rows = 0;
        for message in messages {
            if let SimpleQueryMessage::Row(r) = message {
                rows += 1;
                // epoch, diff, k, n, last_sent
                if r.get(1) == Some("1") {
                    let sent: i64 = r.get(4).unwrap_or("0").parse()?;
                    latencies.push(arrived - sent);
                }
            }
        }
        if rows == 0 && *done.borrow() {
            return Ok(latencies);
        }
    }
}

/// Sends `PER_TICK` events every millisecond for the plan's time, through
/// `send(events)`; returns how many were sent, in how many seconds, and
/// the round trips `send` measured.
async fn paced<F, Fut>(plan: &Plan, mut send: F) -> BenchResult<(usize, f64, Vec<i64>)>
where
    F: FnMut(Vec<(i32, i64)>) -> Fut,
    Fut: std::future::Future<Output = BenchResult<Option<i64>>>,
{
    let mut round_trips = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(plan.seconds);
    let mut sent = 0;
    while Instant::now() < deadline {
        ticker.tick().await;
        let at = now_us();
        let events = (0..PER_TICK).map(|i| (((sent + i) * 7919 % KEYS) as i32, at)).collect();
        round_trips.extend(send(events).await?);
        sent += PER_TICK;
    }
    Ok((sent, started.elapsed().as_secs_f64(), round_trips))
}

async fn insert_case(plan: &Plan) -> BenchResult<(Samples, Samples)> {
    let (server, client, subscriber) = start().await?;
    let mut writers = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        writers.push(std::sync::Arc::new(connect(&server).await?));
    }
    let (stop, done) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(subscribe(subscriber, done));
    // Each millisecond's INSERT goes out on the next writer, without
    // waiting for the one before: a slow statement does not hold the pace.
    let mut inserts = Vec::new();
    let (sent, seconds, _) = paced(plan, |events| {
        let sql = format!(
            "INSERT INTO events VALUES {}",
            events.iter().map(|(k, at)| format!("({k}, {at})")).collect::<Vec<_>>().join(",")
        );
        let writer = writers[inserts.len() % WRITERS].clone();
        inserts.push(tokio::spawn(async move {
            let started = now_us();
            writer.batch_execute(&sql).await?;
            Ok::<i64, tokio_postgres::Error>(now_us() - started)
        }));
        std::future::ready(Ok(None))
    })
    .await?;
    let mut acks = Vec::with_capacity(inserts.len());
    for insert in inserts {
        acks.push(insert.await??);
    }
    stop.send(true)?;
    let seen = reader.await??;
    check(&client, sent, seen.len()).await?;
    server.shutdown().await;
    let events = sent;
    Ok((Samples { events, seconds, latencies_us: acks }, Samples { events, seconds, latencies_us: seen }))
}

async fn kafka_case(plan: &Plan) -> BenchResult<(&'static str, Samples)> {
    let broker = Broker::start(!common::quick(), &[("events".to_string(), 1)])?;
    let (server, client, subscriber) = start().await?;
    let producer: BaseProducer =
        ClientConfig::new().set("bootstrap.servers", broker.brokers()).set("linger.ms", "1").create()?;
    // tansu makes the topic on its first message; the consumer starts after it.
    producer.send(BaseRecord::<(), str>::to("events").payload("{}")).map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(10))?;
    client
        .batch_execute(&format!(
            "SELECT pipeline_kafka.add_broker('{}');
             SELECT pipeline_kafka.consume_begin('events', 'events', format := 'json', start_offset := -1);",
            broker.brokers()
        ))
        .await?;
    // The consumer starts at the end: wait until it is there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (stop, done) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(subscribe(subscriber, done));
    let (sent, seconds, _) = paced(plan, |events| {
        let mut result = Ok(None);
        for (k, at) in events {
            let payload = format!("{{\"k\": {k}, \"sent_us\": {at}}}");
            if let Err((e, _)) = producer.send(BaseRecord::<(), String>::to("events").payload(&payload)) {
                result = Err(e.into());
            }
        }
        producer.poll(Duration::ZERO);
        std::future::ready(result)
    })
    .await?;
    producer.flush(Duration::from_secs(10))?;
    wait_counted(&client, sent).await?;
    stop.send(true)?;
    let seen = reader.await??;
    check(&client, sent, seen.len()).await?;
    server.shutdown().await;
    Ok((broker.name(), Samples { events: sent, seconds, latencies_us: seen }))
}

/// Waits (up to 30 s) until the view counted `events`.
async fn wait_counted(client: &Client, events: usize) -> BenchResult<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: Option<i64> = client.query_one("SELECT sum(n)::bigint FROM v", &[]).await?.get(0);
        if n == Some(events as i64) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the view counted {n:?} of {events} events").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails unless the view counted every event and the subscriber saw at
/// least one change per key written.
async fn check(client: &Client, sent: usize, changes: usize) -> BenchResult<()> {
    let n: Option<i64> = client.query_one("SELECT sum(n)::bigint FROM v", &[]).await?.get(0);
    if n != Some(sent as i64) {
        return Err(format!("the view counted {n:?} of {sent} events").into());
    }
    if changes < KEYS.min(sent) {
        return Err(format!("the subscriber saw {changes} changes for {sent} events").into());
    }
    Ok(())
}
