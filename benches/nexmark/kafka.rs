//! Nexmark through Kafka: the bids produced once to a topic by
//! `eddy::generate` (what `eddy generate --schema nexmark` runs), then
//! consumed by `pipeline_kafka.consume_begin` into each query's view.

use std::time::{Duration, Instant};

use eddy::generate::{Generate, run as generate};
use tokio_postgres::Client;

use crate::common::BenchResult;
use crate::common::broker::Broker;
use crate::{Measured, Query};

/// The topic's partitions.
pub const PARTITIONS: i32 = 4;
const TOPIC: &str = "nexmark_bid";
/// How long consuming one query's bids may take before the run fails.
const DEADLINE: Duration = Duration::from_secs(600);

/// A broker holding the bids.
pub struct Produced {
    broker: Broker,
    pub produce_seconds: f64,
}

impl Produced {
    pub fn name(&self) -> &'static str {
        self.broker.name()
    }
}

/// Starts a broker (tansu when `tansu` and installed, else the mock broker)
/// and produces the first `count` bids to it.
pub async fn produce(count: u64, tansu: bool) -> BenchResult<Produced> {
    let broker = Broker::start(tansu, &[(TOPIC.to_string(), PARTITIONS)])?;
    let job = Generate {
        brokers: broker.brokers(),
        topic: TOPIC.into(),
        partitions: PARTITIONS,
        count,
        rate: None,
        keys: 0,
        start: 0,
        format: "json".into(),
        schema: "nexmark".into(),
    };
    let started = Instant::now();
    generate(job).await?;
    Ok(Produced { broker, produce_seconds: started.elapsed().as_secs_f64() })
}

/// Consumes the topic from the beginning into a fresh server with the
/// query's view, until every bid is applied.
pub async fn measure(query: &Query, produced: &Produced, count: u64, expected: &[String]) -> BenchResult<Measured> {
    let server = crate::start(query).await?;
    let brokers = produced.broker.brokers();
    server.1.batch_execute(&format!("SELECT pipeline_kafka.add_broker('{brokers}')")).await?;
    crate::measure_ingest(query, count as usize, server, expected, async |client: &Client| {
        client
            .batch_execute(&format!("SELECT pipeline_kafka.consume_begin('{TOPIC}', 'bid', format := 'json')"))
            .await?;
        let started = Instant::now();
        loop {
            let row = client.query_one("SELECT messages, errors FROM pipeline_kafka.consumers", &[]).await?;
            let (messages, errors): (i64, i64) = (row.get(0), row.get(1));
            if errors > 0 {
                return Err(format!("{errors} bids did not decode").into());
            }
            if messages as u64 >= count {
                return Ok(());
            }
            if started.elapsed() > DEADLINE {
                return Err(format!("only {messages} of {count} bids consumed").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}
