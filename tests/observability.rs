//! The HTTP side: `/metrics` scraped after known writes (exact counts, and
//! parsed by Python's `prometheus_client`), `/api/status`, the status page
//! rendered by headless Chromium, the token, and `--http` off.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use eddy::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("observability-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn loopback_any_port() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// A GET over plain HTTP/1.1: the status code and the body.
async fn get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("http connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("request sent");
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.expect("response read");
    let response = String::from_utf8(response).expect("utf-8 response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "expected a plain body: {head}");
    (status, body.to_string())
}

/// The value of the sample `name{labels}` in Prometheus text.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .expect("a number")
}

async fn metrics(server: &Server) -> String {
    let (status, body) = get(server.http_addr().expect("http is on"), "/metrics", "").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Streams, a view and a table with known writes.
async fn known_writes(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE STREAM events (k text, v bigint);
             CREATE VIEW counts AS SELECT k, count(*) AS n FROM events GROUP BY k;
             CREATE TABLE accounts (id bigint PRIMARY KEY, plan text);",
        )
        .await
        .expect("ddl");
    client.batch_execute("INSERT INTO events VALUES ('a', 1), ('b', 2), ('a', 3)").await.expect("insert");
    client.batch_execute("INSERT INTO events VALUES ('c', 4), ('c', 5)").await.expect("insert");
    let sink = client.copy_in("COPY events (k, v) FROM STDIN").await.expect("copy starts");
    let data: String = (0..100).map(|i| format!("k{}\t{i}\n", i % 10)).collect();
    futures::pin_mut!(sink);
    futures::SinkExt::send(&mut sink, bytes::Bytes::from(data)).await.expect("copy data");
    assert_eq!(sink.finish().await.expect("copy ends"), 100);
    client.batch_execute("INSERT INTO accounts VALUES (1, 'free'), (2, 'pro')").await.expect("insert");
    client.batch_execute("UPDATE accounts SET plan = 'pro' WHERE id = 1").await.expect("update");
}

#[tokio::test]
async fn metrics_count_known_writes_exactly() {
    let dir = temp_dir("exact");
    let config = Config {
        data_dir: Some(dir.clone()),
        checkpoint_interval: Duration::from_secs(3600),
        http: loopback_any_port(),
        ..Config::default()
    };
    let server = common::start_server_with(config).await;
    let client = common::connect(&server).await;
    known_writes(&client).await;
    let n: i64 = client.query_one("SELECT sum(n)::bigint FROM counts", &[]).await.expect("read").get(0);
    assert_eq!(n, 105);

    let text = metrics(&server).await;
    assert_eq!(sample(&text, "eddy_stream_rows_total{stream=\"events\"}"), 105.0);
    assert!(sample(&text, "eddy_stream_bytes_total{stream=\"events\"}") >= 105.0 * 8.0);
    assert_eq!(sample(&text, "eddy_view_rows_total{view=\"counts\"}"), 105.0);
    assert_eq!(sample(&text, "eddy_view_groups{view=\"counts\"}"), 13.0);
    assert!(sample(&text, "eddy_view_state_bytes{view=\"counts\"}") > 0.0);
    // Three writes reached the view: two INSERTs and one COPY.
    assert_eq!(sample(&text, "eddy_view_apply_seconds_count{view=\"counts\"}"), 3.0);
    assert_eq!(sample(&text, "eddy_view_apply_seconds_bucket{view=\"counts\",le=\"+Inf\"}"), 3.0);
    // Two rows added, then one updated (removed and added).
    assert_eq!(sample(&text, "eddy_table_rows_total{table=\"accounts\"}"), 4.0);
    assert_eq!(sample(&text, "eddy_query_duration_seconds_count{kind=\"write\"}"), 4.0);
    assert_eq!(sample(&text, "eddy_query_duration_seconds_count{kind=\"copy\"}"), 1.0);
    assert_eq!(sample(&text, "eddy_query_duration_seconds_count{kind=\"read\"}"), 1.0);
    assert_eq!(sample(&text, "eddy_query_duration_seconds_count{kind=\"ddl\"}"), 3.0);
    assert_eq!(sample(&text, "eddy_connections"), 1.0);
    assert_eq!(sample(&text, "eddy_connections_refused_total"), 0.0);
    assert!(sample(&text, "eddy_process_resident_memory_bytes") > 1e6);
    // Every acknowledged write was fsynced by a group commit.
    assert!(sample(&text, "eddy_insert_log_fsync_seconds_count") >= 1.0);
    assert!(sample(&text, "eddy_insert_log_group_commit_records_sum") >= 5.0);

    // A checkpoint counts once, with its bytes and time.
    let before = sample(&text, "eddy_checkpoints_total");
    assert!(before >= 1.0, "the start and each DDL statement checkpoint");
    client.batch_execute("CHECKPOINT").await.expect("checkpoint");
    let after = metrics(&server).await;
    assert_eq!(sample(&after, "eddy_checkpoints_total"), before + 1.0);
    assert_eq!(sample(&after, "eddy_checkpoint_duration_seconds_count"), before + 1.0);
    assert!(sample(&after, "eddy_checkpoint_written_bytes_total") > 0.0);
    assert!(sample(&after, "eddy_checkpoint_last_success_timestamp_seconds") > 1.7e9);
    assert_eq!(sample(&after, "eddy_checkpoint_failures_total"), 0.0);

    parses_with_prometheus_client(&after);
    documented_and_charted(&after);
    drop(client);
    server.shutdown().await;
}

/// Every family the server exports is listed in docs/operations.md, and
/// every metric the Grafana dashboard charts is one the server exports.
fn documented_and_charted(text: &str) {
    let families: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    assert!(families.len() >= 25, "{families:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let operations = std::fs::read_to_string(root.join("docs/operations.md")).expect("docs/operations.md");
    for family in &families {
        assert!(operations.contains(&format!("| `{family}` |")), "{family} is not in docs/operations.md's table");
    }
    let dashboard = std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).expect("the dashboard");
    let _: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let charted: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("eddy_"))
        .collect();
    assert!(charted.len() >= 20, "{charted:?}");
    for name in charted {
        let family = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(families.contains(&family), "the dashboard charts {name}, which the server does not export");
    }
}

/// Python's `prometheus_client` parser reads the whole text, and finds the
/// families with their types and values.
fn parses_with_prometheus_client(text: &str) {
    let python = std::env::var("EDDY_SQLALCHEMY_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/eddy-tools/sqlalchemy-venv/bin/python", std::env::var("HOME").unwrap_or_default())
    });
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
def value(family, **labels):
    return [float(s.value) for s in families[family].samples if all(s.labels.get(k) == v for k, v in labels.items())][0]
print(len(families) >= 25)
print(families["eddy_stream_rows"].type, value("eddy_stream_rows", stream="events"))
print(families["eddy_view_apply_seconds"].type, value("eddy_view_apply_seconds", view="counts", le="+Inf"))
print(families["eddy_view_groups"].type, value("eddy_view_groups", view="counts"))
"#;
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e} (tests/run.sh makes the virtualenv with prometheus_client)"));
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), text.as_bytes()).expect("text sent");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("python ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "prometheus_client failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "True\ncounter 105.0\nhistogram 3.0\ngauge 13.0\n");
}

#[tokio::test]
async fn status_json_and_page_in_a_browser() {
    let config = Config { http: loopback_any_port(), ..Config::default() };
    let server = common::start_server_with(config).await;
    let client = common::connect(&server).await;
    known_writes(&client).await;
    let http = server.http_addr().expect("http is on");

    let (status, body) = get(http, "/api/status", "").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["streams"][0]["name"], "events");
    assert_eq!(json["streams"][0]["rows"], 105);
    assert_eq!(json["views"][0]["name"], "counts");
    assert_eq!(json["views"][0]["groups"], 13);
    assert_eq!(json["tables"][0]["rows"], 4);
    assert_eq!(json["connections"], 1);

    let (status, page) = get(http, "/", "").await;
    assert_eq!(status, 200);
    // On loopback, a page that rebinds its name to 127.0.0.1 reads nothing.
    let rebound = "GET /api/status HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    let mut socket = tokio::net::TcpStream::connect(http).await.expect("connects");
    socket.write_all(rebound.as_bytes()).await.expect("sent");
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(page.contains("<title>Eddy status</title>"));
    let url = format!("http://{http}/");
    let dom = tokio::task::spawn_blocking(move || browser_dom(&url)).await.expect("browser ran");
    let row = |name: &str| {
        let start = dom.find(&format!("<tr data-name=\"{name}\">")).unwrap_or_else(|| panic!("no row {name}:\n{dom}"));
        dom[start..].split("</tr>").next().unwrap_or_default().to_string()
    };
    assert!(dom.contains("data-loaded=\"yes\""), "the page never loaded its status:\n{dom}");
    assert!(row("events").contains("<td data-field=\"rows\" class=\"n\">105</td>"), "{}", row("events"));
    let view = row("counts");
    assert!(view.contains("<td data-field=\"rows applied\" class=\"n\">105</td>"), "{view}");
    assert!(view.contains("<td data-field=\"groups\" class=\"n\">13</td>"), "{view}");
    assert!(row("accounts").contains("<td data-field=\"changes\" class=\"n\">4</td>"), "{}", row("accounts"));
    drop(client);
    server.shutdown().await;
}

/// Headless Chromium's DOM of `url` after its scripts ran, and a
/// screenshot in the target directory.
fn browser_dom(url: &str) -> String {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("chromium is installed (tests/run.sh installs Debian's chromium)");
    let profile = temp_dir("chromium-profile");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--virtual-time-budget=5000",
        "--window-size=1200,900",
    ];
    let user_dir = format!("--user-data-dir={}", profile.display());
    let out = Command::new(chromium)
        .args(common)
        .arg(&user_dir)
        .args(["--dump-dom", url])
        .stderr(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap_or(Path::new(".")).join("status-page.png");
    let _ = std::fs::remove_file(&target);
    let shot = Command::new(chromium)
        .args(common)
        .arg(&user_dir)
        .arg(format!("--screenshot={}", target.display()))
        .arg(url)
        .stderr(Stdio::null())
        .status()
        .expect("chromium runs");
    assert!(shot.success() && target.exists(), "no screenshot at {}", target.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_token_guards_every_endpoint() {
    let mut auth = eddy::auth::AuthConfig::from_toml(
        "[[auth.users]]\nname = \"app\"\npassword = \"app-secret\"\n[http]\ntoken = \"0123456789abcdef-token\"\n",
        Path::new("."),
    )
    .expect("config");
    let open = Config { http: Some(SocketAddr::from(([0, 0, 0, 0], 0))), auth: auth.clone(), ..Config::default() };
    let server = common::start_server_with(open).await;
    let http = SocketAddr::from(([127, 0, 0, 1], server.http_addr().expect("http is on").port()));
    for path in ["/metrics", "/api/status", "/"] {
        let (status, body) = get(http, path, "").await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("Authorization: Bearer"), "{body}");
        assert_eq!(get(http, path, "Authorization: Bearer wrong-token-0123456\r\n").await.0, 401);
        assert_eq!(get(http, path, "Authorization: Bearer 0123456789abcdef-token\r\n").await.0, 200, "{path}");
    }
    assert_eq!(get(http, "/?token=0123456789abcdef-token", "").await.0, 200);
    server.shutdown().await;

    // With users and no token, only loopback may serve HTTP.
    auth.http_token = None;
    let refused = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        http: Some(SocketAddr::from(([0, 0, 0, 0], 0))),
        auth: auth.clone(),
        ..Config::default()
    };
    let why = Server::start(refused).await.expect_err("refused without a token").to_string();
    assert!(why.contains("[http] token") && why.contains("--http off"), "{why}");
    let loopback = Config { http: loopback_any_port(), auth, ..Config::default() };
    let server = common::start_server_with(loopback).await;
    let (status, _) = get(server.http_addr().expect("http is on"), "/metrics", "").await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn http_off_serves_nothing_and_a_taken_port_fails_fast() {
    let server = common::start_server().await;
    assert_eq!(server.http_addr(), None, "embedded servers have no HTTP side unless asked");
    server.shutdown().await;

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let config = Config { http: Some(taken.local_addr().expect("addr")), ..Config::default() };
    let config = Config { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..config };
    let why = Server::start(config).await.expect_err("the port is taken").to_string();
    assert!(why.contains("could not listen for HTTP") && why.contains("--http off"), "{why}");
}

/// Kafka figures per partition, against librdkafka's mock broker: good and
/// bad messages, offsets and lag, as `pipeline_kafka.*` has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_metrics_per_partition() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let brokers = mock.bootstrap_servers();
    mock.create_topic("events", 2, 1).expect("topic");
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("producer");
    let messages = [(0, r#"{"k": "a"}"#), (0, "not json"), (0, r#"{"k": "b"}"#), (1, r#"{"k": "c"}"#), (1, "{")];
    for (partition, payload) in messages {
        producer.send(BaseRecord::<(), str>::to("events").partition(partition).payload(payload)).expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
    let server = common::start_server_with(Config { http: loopback_any_port(), ..Config::default() }).await;
    let client = common::connect(&server).await;
    client
        .batch_execute(&format!(
            "CREATE EXTENSION pipeline_kafka; SELECT pipeline_kafka.add_broker('{brokers}');
             CREATE STREAM events (k text);
             CREATE VIEW n AS SELECT count(*) AS n FROM events;
             SELECT pipeline_kafka.consume_begin('events', 'events', format := 'json', start_offset := -2);"
        ))
        .await
        .expect("consuming");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = client.query_one("SELECT sum(\"offset\")::bigint FROM pipeline_kafka.offsets", &[]).await;
        if row.ok().and_then(|r| r.get::<_, Option<i64>>(0)) == Some(5) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the consumer did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = metrics(&server).await;
    let series = |name: &str, partition: i32| {
        format!("{name}{{topic=\"events\",relation=\"events\",partition=\"{partition}\"}}")
    };
    assert_eq!(sample(&text, &series("eddy_kafka_messages_total", 0)), 3.0);
    assert_eq!(sample(&text, &series("eddy_kafka_messages_total", 1)), 2.0);
    assert_eq!(sample(&text, &series("eddy_kafka_errors_total", 0)), 1.0);
    assert_eq!(sample(&text, &series("eddy_kafka_errors_total", 1)), 1.0);
    assert_eq!(sample(&text, &series("eddy_kafka_offset", 0)), 3.0);
    assert_eq!(sample(&text, &series("eddy_kafka_lag", 1)), 0.0);
    assert_eq!(sample(&text, "eddy_kafka_rows_total{topic=\"events\",relation=\"events\"}"), 3.0);
    assert_eq!(sample(&text, "eddy_stream_rows_total{stream=\"events\"}"), 3.0);
    let (_, status) = get(server.http_addr().expect("http is on"), "/api/status", "").await;
    let json: serde_json::Value = serde_json::from_str(&status).expect("json");
    assert_eq!(json["consumers"][0]["errors"], 2);
    assert_eq!(json["consumers"][0]["lag"], 0);
    assert_eq!(json["errors"].as_array().map(Vec::len), Some(2), "{json}");
    drop(client);
    server.shutdown().await;
}

/// Runs `eddy` with `args` and JSON logs until a line containing `needle`
/// (and `linger` more), then kills it: the lines logged, and the one found.
fn log_until(args: &[&str], needle: &str, linger: Duration) -> (Option<String>, Vec<String>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["--ephemeral", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("eddy starts");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let found = loop {
        match received.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains(needle) => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    std::thread::sleep(linger);
    seen.extend(received.try_iter());
    let _ = child.kill();
    let _ = child.wait();
    (found, seen)
}

/// `eddy --log-format json` logs one JSON object per line, the HTTP
/// address among them.
#[test]
fn json_logs_one_object_per_line() {
    let (found, seen) = log_until(&["--http", "127.0.0.1:0"], "eddy http listening", Duration::ZERO);
    let line = found.unwrap_or_else(|| panic!("no http line; the log was:\n{}", seen.join("\n")));
    let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(json["level"], "INFO", "{line}");
    assert!(json["fields"]["addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{line}");
    for earlier in &seen {
        let _: serde_json::Value = serde_json::from_str(earlier).unwrap_or_else(|e| panic!("{e}: {earlier}"));
    }
}

/// `eddy --http off` serves PostgreSQL and no HTTP at all.
#[test]
fn http_off_on_the_command_line() {
    let (found, seen) = log_until(&["--http", "off"], "eddy listening", Duration::from_millis(500));
    assert!(found.is_some(), "eddy did not start: {seen:?}");
    assert!(!seen.iter().any(|l| l.contains("http listening")), "{seen:?}");
}
