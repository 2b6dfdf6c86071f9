//! The correctness oracle: random batches (random keys, values and NULLs)
//! go into a stream through pgwire; after every batch, every continuous view
//! must equal what DataFusion computes for the same query over all the
//! events inserted so far.

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The views under test: every aggregate the issue names, WHERE, GROUP BY
/// expressions, DISTINCT, HAVING, and a view without GROUP BY.
const VIEWS: &[(&str, &str)] = &[
    ("by_key", "SELECT k, count(*), count(v), sum(v), avg(v), min(v), max(v) FROM s GROUP BY k"),
    ("by_group", "SELECT g, count(DISTINCT k), bool_and(b), bool_or(b), stddev(v), variance(v) FROM s GROUP BY g"),
    ("filtered", "SELECT count(*), sum(v), min(g) FROM s WHERE v > 0"),
    ("expr_group", "SELECT k % 3 AS m, g, max(v), min(k) FROM s GROUP BY k % 3, g"),
    ("distinct_pairs", "SELECT DISTINCT g, b FROM s"),
    ("having", "SELECT k, count(*) AS n FROM s GROUP BY k HAVING count(*) > 3"),
    ("strings", "SELECT g, string_agg(CAST(k AS text), ',' ORDER BY k), max(length(g)) FROM s WHERE k < 4 GROUP BY g"),
];

struct Event {
    k: Option<i32>,
    g: Option<String>,
    v: Option<f64>,
    b: Option<bool>,
}

fn random_event(rng: &mut StdRng) -> Event {
    let null = |rng: &mut StdRng| rng.random_bool(0.1);
    Event {
        k: (!null(rng)).then(|| rng.random_range(0..20)),
        g: (!null(rng)).then(|| ["a", "b", "c", "dd", "eee"][rng.random_range(0..5)].to_string()),
        v: (!null(rng)).then(|| (rng.random_range(-1000..1000) as f64) / 8.0),
        b: (!null(rng)).then(|| rng.random_bool(0.5)),
    }
}

fn sql_value<T: ToString>(v: &Option<T>, quote: bool) -> String {
    match v {
        None => "NULL".into(),
        Some(x) if quote => format!("'{}'", x.to_string()),
        Some(x) => x.to_string(),
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int32, true),
        Field::new("g", DataType::Utf8, true),
        Field::new("v", DataType::Float64, true),
        Field::new("b", DataType::Boolean, true),
    ]))
}

fn to_batch(events: &[Event]) -> RecordBatch {
    let k: ArrayRef = Arc::new(events.iter().map(|e| e.k).collect::<Int32Array>());
    let g: ArrayRef = Arc::new(events.iter().map(|e| e.g.clone()).collect::<StringArray>());
    let v: ArrayRef = Arc::new(events.iter().map(|e| e.v).collect::<Float64Array>());
    let b: ArrayRef = Arc::new(events.iter().map(|e| e.b).collect::<BooleanArray>());
    RecordBatch::try_new(schema(), vec![k, g, v, b]).expect("batch")
}

/// Rows as sorted lists of cells; floats are compared with a tolerance later.
fn batch_rows(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| if c.is_null(r) { None } else { Some(array_value_to_string(c, r).expect("formats")) })
                    .collect(),
            );
        }
    }
    rows
}

fn cells_equal(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) if x == y => true,
        (Some(x), Some(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(p), Ok(q)) => (p - q).abs() <= 1e-6 * p.abs().max(q.abs()).max(1.0),
            _ => false,
        },
        _ => false,
    }
}

fn sort_key(row: &[Option<String>]) -> String {
    row.iter()
        .map(|c| match c {
            None => "\u{0}NULL".to_string(),
            Some(s) => match s.parse::<f64>() {
                Ok(f) => format!("{f:+020.6}"),
                Err(_) => s.clone(),
            },
        })
        .collect::<Vec<_>>()
        .join("|")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_equal_batch_recompute_after_every_batch() {
    let seed: u64 = std::env::var("EDDY_ORACLE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261121);
    let mut rng = StdRng::seed_from_u64(seed);
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client.batch_execute("CREATE STREAM s (k int, g text, v float8, b bool)").await.expect("stream");
    for (name, sql) in VIEWS {
        client.batch_execute(&format!("CREATE VIEW {name} AS {sql}")).await.expect(name);
    }

    let mut all: Vec<Event> = Vec::new();
    for batch_no in 0..25 {
        let n = rng.random_range(0..300);
        let events: Vec<Event> = (0..n).map(|_| random_event(&mut rng)).collect();
        if !events.is_empty() {
            let values: Vec<String> = events
                .iter()
                .map(|e| {
                    format!(
                        "({}, {}, {}, {})",
                        sql_value(&e.k, false),
                        sql_value(&e.g, true),
                        sql_value(&e.v, false),
                        sql_value(&e.b, false)
                    )
                })
                .collect();
            let inserted = client
                .execute(&format!("INSERT INTO s (k, g, v, b) VALUES {}", values.join(", ")), &[])
                .await
                .expect("insert");
            assert_eq!(inserted, n as u64);
        }
        all.extend(events);

        let mut state = SessionContext::new().state();
        eddy::query::functions::register(&mut state).expect("functions");
        let ctx = SessionContext::new_with_state(state);
        let table = MemTable::try_new(schema(), vec![vec![to_batch(&all)]]).expect("memtable");
        ctx.register_table("s", Arc::new(table)).expect("register");
        for (name, sql) in VIEWS {
            let expected = batch_rows(&ctx.sql(sql).await.expect("oracle plans").collect().await.expect("oracle runs"));
            let actual: Vec<Vec<Option<String>>> = client
                .simple_query(&format!("SELECT * FROM {name}"))
                .await
                .expect("view reads")
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(normalize_pg)).collect())
                    }
                    _ => None,
                })
                .collect();
            let mut expected = expected;
            let mut actual = actual;
            expected.sort_by_key(|r| sort_key(r));
            actual.sort_by_key(|r| sort_key(r));
            let same = expected.len() == actual.len()
                && expected
                    .iter()
                    .zip(&actual)
                    .all(|(e, a)| e.len() == a.len() && e.iter().zip(a).all(|(x, y)| cells_equal(x, y)));
            assert!(
                same,
                "seed {seed}, batch {batch_no}, view {name}: {} events\nexpected {expected:?}\nactual   {actual:?}",
                all.len()
            );
        }
    }
    server.shutdown().await;
}

/// PostgreSQL text booleans are t/f; Arrow prints true/false.
fn normalize_pg(s: &str) -> String {
    match s {
        "t" => "true".into(),
        "f" => "false".into(),
        other => other.to_string(),
    }
}
