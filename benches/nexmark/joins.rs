//! Nexmark's join queries as continuous views, over tables of auctions and
//! persons:
//!
//! - **q20** (expand each bid with its auction, category 10): the bid
//!   stream joined with the `auction` table, a lookup join on its primary
//!   key; the auctions are loaded first, so each bid finds its auction. The
//!   figure is bids per second by COPY.
//! - **q3** (local item suggestion): the `auction` table joined with the
//!   `person` table (a join of tables), sellers in Oregon, Idaho or
//!   California (the generator writes states in lower case), category 10;
//!   the persons are loaded first. The figure is
//!   auctions per second by COPY.
//!
//! Each view is checked against the same join computed here, in plain
//! Rust, over the generated events: q3 row by row, q20 by its row count and
//! column sums (it holds one row per matching bid).

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use eddy::generate::nexmark::{events, timestamp};
use futures::SinkExt;
use nexmark::event::{Auction, Event, EventType, Person};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::common::{self, BenchResult};

const AUCTION_TABLE: &str = "CREATE TABLE auction (id bigint PRIMARY KEY, item_name text, description text, \
     initial_bid bigint, reserve bigint, date_time timestamp, expires timestamp, seller bigint, category bigint, extra text)";
const PERSON_TABLE: &str = "CREATE TABLE person (id bigint PRIMARY KEY, name text, email_address text, \
     credit_card text, city text, state text, date_time timestamp, extra text)";
const Q20: &str = "SELECT b.auction, b.bidder, b.price, b.channel, b.url, b.date_time, b.extra, a.item_name, \
     a.description, a.initial_bid, a.reserve, a.date_time AS auction_time, a.expires, a.seller, a.category, \
     a.extra AS auction_extra FROM bid b JOIN auction a ON b.auction = a.id WHERE a.category = 10";
const Q20_READ: &str = "SELECT count(*), sum(price), sum(bidder), sum(initial_bid), count(DISTINCT auction) FROM v";
const Q3: &str = "SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id \
     WHERE a.category = 10 AND (p.state = 'or' OR p.state = 'id' OR p.state = 'ca')";
const Q3_READ: &str = "SELECT name, city, state, id FROM v";

/// The generated events, as COPY text, with what the checks need.
struct Events {
    bids: String,
    bid_count: usize,
    auctions: String,
    auction_count: usize,
    persons: String,
    person_count: usize,
    /// q20's expected count, sum(price), sum(bidder), sum(initial_bid),
    /// distinct auctions.
    q20: [i64; 5],
    /// q3's expected rows, sorted.
    q3: Vec<String>,
}

/// Runs q20 and q3 over `bids` bids and the auctions and persons they
/// refer to; returns the report's table rows.
pub async fn run(bids: usize) -> BenchResult<String> {
    let e = generate(bids);
    let q20 = measure(&[AUCTION_TABLE], &[("auction", &e.auctions)], Q20, ("bid", &e.bids)).await?;
    let got = read(&q20.1, Q20_READ).await?;
    let want = vec![e.q20.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("|")];
    check("q20", &got, &want)?;
    let q3 = measure(&[PERSON_TABLE, AUCTION_TABLE], &[("person", &e.persons)], Q3, ("auction", &e.auctions)).await?;
    let mut got = read(&q3.1, Q3_READ).await?;
    got.sort();
    check("q3", &got, &e.q3)?;
    q20.2.shutdown().await;
    q3.2.shutdown().await;
    Ok(format!(
        "| q20 (bids joined with their auction, a lookup join) | {} bids/s | {} result rows | yes |\n\
         | q3 (auctions joined with their seller, a join of tables) | {} auctions/s | {} result rows | yes |\n\n\
         ({} bids, {} auctions, {} persons)\n",
        common::thousands(e.bid_count as f64 / q20.0),
        e.q20[0],
        common::thousands(e.auction_count as f64 / q3.0),
        e.q3.len(),
        e.bid_count,
        e.auction_count,
        e.person_count,
    ))
}

/// A fresh server with `tables` loaded (`loads`), view `v` as `view`, and
/// `input` copied in: the seconds the copy took, a client, and the server.
async fn measure(
    tables: &[&str],
    loads: &[(&str, &String)],
    view: &str,
    input: (&str, &String),
) -> BenchResult<(f64, Client, eddy::Server)> {
    let (server, client) = crate::common::pg::start().await?;
    client.batch_execute(eddy::generate::nexmark::stream_sql(EventType::Bid)).await?;
    for table in tables {
        client.batch_execute(table).await?;
    }
    for (table, rows) in loads {
        copy(&client, table, rows).await?;
    }
    client.batch_execute(&format!("CREATE VIEW v AS {view}")).await?;
    let started = Instant::now();
    copy(&client, input.0, input.1).await?;
    Ok((started.elapsed().as_secs_f64(), client, server))
}

/// COPYs `rows` (COPY text) into `target`, in chunks of whole lines.
async fn copy(client: &Client, target: &str, rows: &str) -> BenchResult<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let cut = rest.char_indices().skip(1 << 22).find(|(_, c)| *c == '\n').map_or(rest.len(), |(i, _)| i + 1);
        let sink = client.copy_in(&format!("COPY {target} FROM STDIN")).await?;
        futures::pin_mut!(sink);
        sink.send(Bytes::from(rest[..cut].to_string())).await?;
        sink.finish().await?;
        rest = &rest[cut..];
    }
    Ok(())
}

async fn read(client: &Client, sql: &str) -> BenchResult<Vec<String>> {
    let mut rows = Vec::new();
    for m in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(r) = m {
            rows.push((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    Ok(rows)
}

fn check(query: &str, got: &[String], want: &[String]) -> BenchResult<()> {
    if want.is_empty() || want.iter().all(|row| row.starts_with("0|")) {
        return Err(format!("{query}: the expected result is empty, so the check would prove nothing").into());
    }
    if got == want {
        return Ok(());
    }
    let show = |v: &[String]| v.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
    Err(format!(
        "{query}: the view's {} rows ({}) differ from the expected {} ({})",
        got.len(),
        show(got),
        want.len(),
        show(want)
    )
    .into())
}

/// `bids` bids, every auction they refer to, and every seller of those.
fn generate(bids: usize) -> Events {
    let bid_events: Vec<_> = events(EventType::Bid, 0)
        .take(bids)
        .filter_map(|e| match e {
            Event::Bid(b) => Some(b),
            _ => None,
        })
        .collect();
    let last_auction = bid_events.iter().map(|b| b.auction).max().unwrap_or(0);
    let auctions: Vec<Auction> = events(EventType::Auction, 0)
        .map_while(|e| match e {
            Event::Auction(a) if a.id <= last_auction => Some(a),
            _ => None,
        })
        .collect();
    let last_seller = auctions.iter().map(|a| a.seller).max().unwrap_or(0);
    let persons: Vec<Person> = events(EventType::Person, 0)
        .map_while(|e| match e {
            Event::Person(p) if p.id <= last_seller => Some(p),
            _ => None,
        })
        .collect();
    let by_id: HashMap<usize, &Auction> = auctions.iter().map(|a| (a.id, a)).collect();
    let mut q20 = [0i64; 5];
    let mut matched = std::collections::HashSet::new();
    for b in &bid_events {
        if let Some(a) = by_id.get(&b.auction).filter(|a| a.category == 10) {
            q20[0] += 1;
            q20[1] += b.price as i64;
            q20[2] += b.bidder as i64;
            q20[3] += a.initial_bid as i64;
            matched.insert(b.auction);
        }
    }
    q20[4] = matched.len() as i64;
    let sellers: HashMap<usize, &Person> = persons.iter().map(|p| (p.id, p)).collect();
    let mut q3: Vec<String> = auctions
        .iter()
        .filter(|a| a.category == 10)
        .filter_map(|a| sellers.get(&a.seller).map(|p| (a, p)))
        .filter(|(_, p)| ["or", "id", "ca"].contains(&p.state.as_str()))
        .map(|(a, p)| format!("{}|{}|{}|{}", p.name, p.city, p.state, a.id))
        .collect();
    q3.sort();
    let bids_text: String = bid_events
        .iter()
        .map(|b| {
            let t = timestamp(b.date_time);
            format!("{}\t{}\t{}\t{}\t{}\t{t}\t{}\n", b.auction, b.bidder, b.price, b.channel, b.url, b.extra)
        })
        .collect();
    let auctions_text: String = auctions
        .iter()
        .map(|a| {
            let (t, x) = (timestamp(a.date_time), timestamp(a.expires));
            format!(
                "{}\t{}\t{}\t{}\t{}\t{t}\t{x}\t{}\t{}\t{}\n",
                a.id, a.item_name, a.description, a.initial_bid, a.reserve, a.seller, a.category, a.extra
            )
        })
        .collect();
    let persons_text: String = persons
        .iter()
        .map(|p| {
            let t = timestamp(p.date_time);
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{t}\t{}\n",
                p.id, p.name, p.email_address, p.credit_card, p.city, p.state, p.extra
            )
        })
        .collect();
    Events {
        bids: bids_text,
        bid_count: bid_events.len(),
        auctions: auctions_text,
        auction_count: auctions.len(),
        persons: persons_text,
        person_count: persons.len(),
        q20,
        q3,
    }
}
