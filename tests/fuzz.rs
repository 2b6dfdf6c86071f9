//! Fuzzing the wire protocol and SQL over a real socket.
//!
//! Valid frontend messages (startup, Query, Parse, Bind, Describe,
//! Execute, Close, Sync, COPY data, passwords) are mutated: bytes flipped,
//! lengths and counts changed, messages cut short, junk appended. Random
//! SQL is made from a vocabulary of keywords, operators, literals and
//! names. For every case:
//!
//! - nothing panics (a panic hook counts panics in the server's tasks);
//! - nothing hangs (each case has a deadline);
//! - every error the server sends carries a SQLSTATE;
//! - a connection the server closes got an ErrorResponse first;
//! - the server answers `SELECT 1` afterwards.
//!
//! CI runs each of the two fuzzers for `EDDY_FUZZ_SECONDS` (60 s by
//! default) from a fixed seed; a longer, exploring run is
//! `EDDY_FUZZ_SECONDS=1800 EDDY_FUZZ_SEED=random cargo test --release --test
//! fuzz -- --nocapture`, and `EDDY_FUZZ_SEED=<n>` replays a run.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one SQL statement may take before it counts as a hang.
const CASE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a protocol case is followed. A message that declares more bytes
/// than were sent leaves the server rightly waiting for the rest, as
/// PostgreSQL does; such a case is abandoned, and the server must still
/// serve everyone else.
const PROTOCOL_CASE_DEADLINE: Duration = Duration::from_millis(200);

fn seconds() -> u64 {
    std::env::var("EDDY_FUZZ_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60)
}

/// The run's seed: fixed by default, so that CI is repeatable;
/// `EDDY_FUZZ_SEED=random` explores.
fn seed() -> u64 {
    match std::env::var("EDDY_FUZZ_SEED").ok().as_deref() {
        Some("random") => rand::random(),
        Some(n) => n.parse().unwrap_or(1),
        None => 1,
    }
}

/// Counts panics anywhere in this process (the server runs in it).
fn count_panics() -> Arc<AtomicUsize> {
    let panics = Arc::new(AtomicUsize::new(0));
    let seen = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    panics
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn startup() -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for s in ["user", "eddy", "database", "eddy"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    m.extend(body);
    m
}

/// Well-formed messages to start mutating from.
fn seeds() -> Vec<Vec<u8>> {
    let parse = [b"s1\0SELECT $1::int + 1\0".to_vec(), vec![0, 1, 0, 0, 0, 23]].concat();
    let bind = [b"p1\0s1\0".to_vec(), vec![0, 0, 0, 1, 0, 0, 0, 1, b'5', 0, 0]].concat();
    vec![
        message(b'Q', b"SELECT 1\0"),
        message(b'Q', b"INSERT INTO s VALUES (1, 'a')\0"),
        message(b'Q', b"COPY s FROM STDIN\0"),
        message(b'P', &parse),
        message(b'B', &bind),
        message(b'D', b"Pp1\0"),
        message(b'E', b"p1\0\0\0\0\0"),
        message(b'C', b"Ss1\0"),
        message(b'S', b""),
        message(b'H', b""),
        message(b'd', b"1\tx\n"),
        message(b'c', b""),
        message(b'f', b"oops\0"),
        message(b'p', b"secret\0"),
    ]
}

fn mutate(rng: &mut StdRng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..7) {
            0 if !bytes.is_empty() => {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            1 if bytes.len() > 1 => bytes.truncate(rng.random_range(1..bytes.len())),
            2 => bytes.extend((0..rng.random_range(1..16)).map(|_| rng.random::<u8>())),
            3 if bytes.len() >= 5 => {
                let length: i32 = if rng.random() { rng.random() } else { rng.random_range(-4..64) };
                bytes[1..5].copy_from_slice(&length.to_be_bytes());
            }
            4 if bytes.len() >= 8 => {
                let i = rng.random_range(5..bytes.len() - 1);
                bytes[i] = 0xff;
                bytes[i + 1] = 0xff;
            }
            5 => bytes.insert(rng.random_range(0..=bytes.len()), 0),
            _ => {
                let seeds = seeds();
                bytes.extend(&seeds[rng.random_range(0..seeds.len())]);
            }
        }
    }
    bytes
}

/// Reads backend messages until ReadyForQuery, a close or the deadline.
/// Returns (errors had SQLSTATEs, the connection was closed, an error was
/// seen before any close).
async fn drain(stream: &mut TcpStream) -> Result<(bool, bool), String> {
    let mut saw_error = false;
    loop {
        let mut header = [0u8; 5];
        match stream.read_exact(&mut header).await {
            Ok(_) => {}
            Err(_) => return Ok((true, saw_error)),
        }
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        if !(4..=64 * 1024 * 1024).contains(&len) {
            return Err(format!("a backend message with length {len}"));
        }
        let mut body = vec![0; len as usize - 4];
        if stream.read_exact(&mut body).await.is_err() {
            return Ok((true, saw_error));
        }
        match header[0] {
            b'E' => {
                saw_error = true;
                let fields = String::from_utf8_lossy(&body).to_string();
                if !fields.split('\0').any(|f| f.starts_with('C') && f.len() == 6) {
                    return Err(format!("an error without a SQLSTATE: {fields:?}"));
                }
            }
            b'Z' => return Ok((false, saw_error)),
            b'G' => {
                // COPY IN: finish it so that the case ends.
                let _ = stream.write_all(&message(b'c', b"")).await;
                let _ = stream.write_all(&message(b'S', b"")).await;
            }
            _ => {}
        }
    }
}

/// Sends `bytes` on a fresh, started connection, then a Sync, and checks
/// the answer.
async fn protocol_case(addr: std::net::SocketAddr, bytes: &[u8]) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    stream.write_all(&startup()).await.map_err(|e| e.to_string())?;
    let (closed, _) = drain(&mut stream).await?;
    if closed {
        return Err("closed during a valid startup".into());
    }
    let _ = stream.write_all(bytes).await;
    let _ = stream.write_all(&message(b'S', b"")).await;
    let (closed, saw_error) = drain(&mut stream).await?;
    if closed && !saw_error && !terminates(bytes) {
        return Err("the connection was closed without an ErrorResponse".into());
    }
    Ok(())
}

/// Whether the messages in `bytes`, followed by their declared lengths,
/// include a Terminate, after which the server rightly just closes.
fn terminates(bytes: &[u8]) -> bool {
    let mut at = 0;
    while at + 5 <= bytes.len() {
        if bytes[at] == b'X' {
            return true;
        }
        let len = i32::from_be_bytes([bytes[at + 1], bytes[at + 2], bytes[at + 3], bytes[at + 4]]);
        if len < 4 {
            return false;
        }
        at += 1 + len as usize;
    }
    false
}

async fn alive(client: &tokio_postgres::Client) -> Result<(), String> {
    match client.simple_query("SELECT 1").await {
        Ok(rows) if !rows.is_empty() => Ok(()),
        other => Err(format!("SELECT 1 failed after the case: {other:?}")),
    }
}

/// Both fuzzers, one after the other: the panic hook is process-wide, so
/// they share one test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_protocol_and_sql_never_panic_hang_or_kill_the_server() {
    let panics = count_panics();
    fuzz_protocol(&panics).await;
    fuzz_sql(&panics).await;
}

/// A server with a stream and a view for the cases to touch.
async fn start() -> (eddy::Server, tokio_postgres::Client) {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client
        .batch_execute("CREATE STREAM s (k int, t text); CREATE VIEW v AS SELECT count(*) FROM s")
        .await
        .expect("ddl");
    (server, client)
}

async fn fuzz_protocol(panics: &AtomicUsize) {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let (server, client) = start().await;
    let addr = server.local_addr();
    let until = Instant::now() + Duration::from_secs(seconds());
    let (mut cases, mut waiting) = (0, 0);
    while Instant::now() < until {
        let seeds = seeds();
        let mut bytes = Vec::new();
        for _ in 0..rng.random_range(1..4) {
            let start = seeds[rng.random_range(0..seeds.len())].clone();
            bytes.extend(mutate(&mut rng, start));
        }
        match tokio::time::timeout(PROTOCOL_CASE_DEADLINE, protocol_case(addr, &bytes)).await {
            Ok(outcome) => assert!(outcome.is_ok(), "seed {seed}, case {cases}: {outcome:?}\nbytes: {bytes:?}"),
            Err(_) => waiting += 1,
        }
        cases += 1;
        if cases % 20 == 0 {
            let served = tokio::time::timeout(CASE_DEADLINE, alive(&client)).await;
            let served = served.unwrap_or_else(|_| Err("SELECT 1 hung".into()));
            served.unwrap_or_else(|e| panic!("seed {seed}, case {cases}: {e}"));
        }
    }
    alive(&client).await.expect("alive at the end");
    assert_eq!(panics.load(Ordering::SeqCst), 0, "seed {seed}: panics in {cases} cases (see the log above)");
    println!(
        "{cases} fuzzed protocol cases ({waiting} left the server waiting for declared bytes), seed {seed}: \
         no panic, no hang, every error with a SQLSTATE"
    );
    server.shutdown().await;
}

/// SQL made of random words: keywords, names, literals and operators.
fn random_sql(rng: &mut StdRng) -> String {
    const WORDS: &[&str] = &[
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP",
        "BY",
        "ORDER",
        "LIMIT",
        "INSERT",
        "INTO",
        "VALUES",
        "CREATE",
        "STREAM",
        "VIEW",
        "AS",
        "DROP",
        "SET",
        "SHOW",
        "BEGIN",
        "COMMIT",
        "EXPLAIN",
        "ANALYZE",
        "WITH",
        "JOIN",
        "ON",
        "s",
        "v",
        "k",
        "t",
        "count(*)",
        "sum(k)",
        "avg(k)",
        "now()",
        "NULL",
        "TRUE",
        "1",
        "-1",
        "2.5",
        "'x'",
        "'{}'",
        "$1",
        "(",
        ")",
        ",",
        ";",
        "+",
        "-",
        "*",
        "/",
        "=",
        "<>",
        "||",
        "::",
        "int",
        "text",
        "json",
        "->>",
        "CASE",
        "WHEN",
        "THEN",
        "END",
        "IN",
        "AND",
        "OR",
        "NOT",
        "IS",
        "coalesce(",
        "pipeline_kafka.consumers",
        "pipelinedb.views",
        "pg_catalog.pg_class",
        "generate_series(1, 3)",
        "*",
    ];
    let n = rng.random_range(1..24);
    (0..n).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect::<Vec<_>>().join(" ")
}

async fn fuzz_sql(panics: &AtomicUsize) {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let (server, client) = start().await;
    let until = Instant::now() + Duration::from_secs(seconds());
    let mut cases = 0;
    while Instant::now() < until {
        let sql = random_sql(&mut rng);
        let outcome = tokio::time::timeout(CASE_DEADLINE, client.simple_query(&sql)).await;
        match outcome {
            Err(_) => panic!("seed {seed}: {sql:?} hung"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let db = e.as_db_error().unwrap_or_else(|| panic!("seed {seed}: {sql:?} lost the connection: {e:?}"));
                assert_eq!(db.code().code().len(), 5, "{sql:?}");
            }
        }
        if client.is_closed() {
            panic!("seed {seed}: {sql:?} closed the connection");
        }
        // A COPY or a transaction left open ends here.
        let _ = client.simple_query("ROLLBACK").await;
        cases += 1;
    }
    alive(&client).await.expect("alive at the end");
    assert_eq!(panics.load(Ordering::SeqCst), 0, "seed {seed}: panics in {cases} cases (see the log above)");
    println!("{cases} fuzzed SQL statements, seed {seed}: no panic, no hang, every error with a SQLSTATE");
    server.shutdown().await;
}
