//! `pipeline_kafka.produce_message(topic, message [, partition, key])`:
//! one message to a topic of the added brokers, as pipeline_kafka had.
//!
//! One producer is kept for the broker list it was made for, and made anew
//! when the list changes. The call returns once the broker has
//! acknowledged the message (`acks=all`), or fails with the broker's error
//! after [`DELIVERY_TIMEOUT`].

use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::KafkaError;

/// How long a message may take to be acknowledged.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The producer behind `produce_message`, made on first use.
#[derive(Default)]
pub struct Producer {
    made: Mutex<Option<(String, FutureProducer)>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("brokers", &self.made.lock().as_ref().map(|(b, _)| b.clone())).finish()
    }
}

/// One message to produce.
#[derive(Debug)]
pub struct Message<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The value.
    pub payload: &'a [u8],
    /// The partition, or the key's (or any) when `None`.
    pub partition: Option<i32>,
    /// The key.
    pub key: Option<&'a [u8]>,
}

impl Producer {
    /// Sends `message` to `brokers` and waits for the acknowledgement.
    pub async fn produce(&self, brokers: &str, message: Message<'_>) -> Result<(), KafkaError> {
        let producer = self.for_brokers(brokers)?;
        let mut record = FutureRecord::<[u8], [u8]>::to(message.topic).payload(message.payload);
        if let Some(key) = message.key {
            record = record.key(key);
        }
        if let Some(partition) = message.partition {
            record = record.partition(partition);
        }
        match producer.send(record, DELIVERY_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(KafkaError::Produce { topic: message.topic.to_string(), reason: e.to_string() }),
        }
    }

    fn for_brokers(&self, brokers: &str) -> Result<FutureProducer, KafkaError> {
        let mut made = self.made.lock();
        if let Some((for_brokers, producer)) = made.as_ref()
            && for_brokers == brokers
        {
            return Ok(producer.clone());
        }
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("client.id", "eddy")
            .set("acks", "all")
            .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
            .set("linger.ms", "0")
            .create()
            .map_err(|e| KafkaError::Client(e.to_string()))?;
        *made = Some((brokers.to_string(), producer.clone()));
        Ok(producer)
    }
}
