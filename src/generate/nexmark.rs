//! The Nexmark schema of `eddy generate`: Person, Auction and Bid events
//! from the `nexmark` crate (the Nexmark spec's generator), as JSON objects
//! whose fields are the columns of [`stream_sql`]'s stream.
//!
//! The generator runs with its default configuration and its first event at
//! [`BASE_TIME_MS`], so the same `count` and `start` always give the same
//! events; a batch computation over them can check a view's contents.

use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::{Event, EventType};
use serde_json::json;

/// 2026-01-01 00:00:00 UTC, in milliseconds: the first event's time.
pub const BASE_TIME_MS: u64 = 1_767_225_600_000;

/// The event type a `--schema` names: `nexmark` (bids, the stream most
/// queries read), `nexmark-bid`, `nexmark-auction` or `nexmark-person`.
pub fn event_type(schema: &str) -> Option<EventType> {
    match schema {
        "nexmark" | "nexmark-bid" => Some(EventType::Bid),
        "nexmark-auction" => Some(EventType::Auction),
        "nexmark-person" => Some(EventType::Person),
        _ => None,
    }
}

/// The events of one type, from the `start`-th on.
pub fn events(kind: EventType, start: u64) -> impl Iterator<Item = Event> {
    let config = NexmarkConfig { base_time: BASE_TIME_MS, ..NexmarkConfig::default() };
    EventGenerator::new(config).with_type_filter(kind).skip(start as usize)
}

/// The `CREATE STREAM` statement for events of `kind`, named as Nexmark's
/// queries name them.
pub fn stream_sql(kind: EventType) -> &'static str {
    match kind {
        EventType::Bid => {
            "CREATE STREAM bid (auction bigint, bidder bigint, price bigint, channel text, url text, \
             date_time timestamp, extra text)"
        }
        EventType::Auction => {
            "CREATE STREAM auction (id bigint, item_name text, description text, initial_bid bigint, \
             reserve bigint, date_time timestamp, expires timestamp, seller bigint, category bigint, extra text)"
        }
        EventType::Person => {
            "CREATE STREAM person (id bigint, name text, email_address text, credit_card text, city text, \
             state text, date_time timestamp, extra text)"
        }
    }
}

/// A millisecond Unix time as PostgreSQL's timestamp text, in UTC.
pub fn timestamp(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// One event as a JSON object.
pub fn to_json(event: &Event) -> String {
    let value = match event {
        Event::Bid(b) => json!({
            "auction": b.auction, "bidder": b.bidder, "price": b.price, "channel": b.channel,
            "url": b.url, "date_time": timestamp(b.date_time), "extra": b.extra,
        }),
        Event::Auction(a) => json!({
            "id": a.id, "item_name": a.item_name, "description": a.description,
            "initial_bid": a.initial_bid, "reserve": a.reserve, "date_time": timestamp(a.date_time),
            "expires": timestamp(a.expires), "seller": a.seller, "category": a.category, "extra": a.extra,
        }),
        Event::Person(p) => json!({
            "id": p.id, "name": p.name, "email_address": p.email_address, "credit_card": p.credit_card,
            "city": p.city, "state": p.state, "date_time": timestamp(p.date_time), "extra": p.extra,
        }),
    };
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_reproducible_json_with_the_stream_columns() {
        let first: Vec<String> = events(EventType::Bid, 0).take(3).map(|e| to_json(&e)).collect();
        let again: Vec<String> = events(EventType::Bid, 1).take(2).map(|e| to_json(&e)).collect();
        assert_eq!(first[1..], again[..]);
        let bid: serde_json::Value = serde_json::from_str(&first[0]).unwrap();
        for column in ["auction", "bidder", "price", "channel", "url", "date_time", "extra"] {
            assert!(bid.get(column).is_some(), "{column} in {bid}");
        }
        assert!(bid["date_time"].as_str().unwrap().starts_with("2026-01-01 00:00:00"));
        let person = to_json(&events(EventType::Person, 0).next().unwrap());
        assert!(person.contains("\"email_address\""), "{person}");
        assert_eq!(event_type("nexmark"), Some(EventType::Bid));
        assert_eq!(event_type("logs"), None);
    }
}
