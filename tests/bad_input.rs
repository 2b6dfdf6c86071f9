//! Bad input over the wire: each case gets an error with the right
//! SQLSTATE, nothing panics, and the connection and server keep working.

mod common;

use common::raw::{Raw, cstr, error_code};

async fn count_of(client: &tokio_postgres::Client, view: &str) -> i64 {
    client.query_one(&format!("SELECT n FROM {view}"), &[]).await.expect("reads").get(0)
}

#[tokio::test]
async fn wrong_number_of_parameters_is_a_protocol_error() {
    let server = common::start_server().await;
    let mut raw = Raw::connect(server.local_addr()).await;
    // Parse a statement with two parameters, then Bind only one.
    let mut parse = cstr("");
    parse.extend(cstr("SELECT $1::int + $2::int"));
    parse.extend_from_slice(&0i16.to_be_bytes());
    raw.send(b'P', &parse).await;
    let mut bind = cstr("");
    bind.extend(cstr(""));
    bind.extend_from_slice(&0i16.to_be_bytes()); // parameter formats: all text
    bind.extend_from_slice(&1i16.to_be_bytes()); // one parameter
    bind.extend_from_slice(&1i32.to_be_bytes());
    bind.push(b'7');
    bind.extend_from_slice(&0i16.to_be_bytes()); // result formats
    raw.send(b'B', &bind).await;
    let mut execute = cstr("");
    execute.extend_from_slice(&0i32.to_be_bytes());
    raw.send(b'E', &execute).await;
    raw.send(b'S', &[]).await;
    let messages = raw.until_ready().await;
    assert_eq!(error_code(&messages).as_deref(), Some("08P01"), "{messages:?}");
    // The connection still answers.
    raw.query("SELECT 1").await;
    let messages = raw.until_ready().await;
    assert!(error_code(&messages).is_none());
    assert!(messages.iter().any(|(t, _)| *t == b'D'));
    server.shutdown().await;
}

#[tokio::test]
async fn a_query_over_the_size_limit_is_rejected_and_the_connection_lives() {
    let config = eddy::Config { max_query_bytes: 4096, ..eddy::Config::default() };
    let server = common::start_server_with(config).await;
    let client = common::connect(&server).await;
    let huge = format!("SELECT '{}'", "x".repeat(10_000));
    let err = client.simple_query(&huge).await.expect_err("too large");
    assert_eq!(err.code().map(|c| c.code()), Some("54000"));
    let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(message.contains("limit"), "{message}");
    let rows = client.simple_query("SELECT 1").await.expect("still works");
    assert!(!rows.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_copy_applies_nothing() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client.batch_execute("CREATE STREAM s (k int); CREATE VIEW v AS SELECT count(*) AS n FROM s").await.expect("ddl");
    let mut raw = Raw::connect(server.local_addr()).await;
    raw.query("COPY s (k) FROM STDIN").await;
    let (tag, _) = raw.read().await;
    assert_eq!(tag, b'G', "CopyInResponse");
    raw.send(b'd', b"1\n2\n3\n").await;
    raw.close().await;
    // Another client sees nothing applied, and the server serves on.
    client.execute("INSERT INTO s (k) VALUES (10)", &[]).await.expect("insert works");
    assert_eq!(count_of(&client, "v").await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn copy_fail_from_the_client_applies_nothing() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client.batch_execute("CREATE STREAM s (k int); CREATE VIEW v AS SELECT count(*) AS n FROM s").await.expect("ddl");
    let mut raw = Raw::connect(server.local_addr()).await;
    raw.query("COPY s (k) FROM STDIN").await;
    assert_eq!(raw.read().await.0, b'G');
    raw.send(b'd', b"1\n2\n").await;
    raw.send(b'f', &cstr("client gave up")).await;
    let messages = raw.until_ready().await;
    assert_eq!(error_code(&messages).as_deref(), Some("57014"));
    raw.query("SELECT 1").await;
    assert!(error_code(&raw.until_ready().await).is_none());
    assert_eq!(count_of(&client, "v").await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_bytes_do_not_take_the_server_down() {
    let server = common::start_server().await;
    let mut stream = tokio::net::TcpStream::connect(server.local_addr()).await.expect("connects");
    tokio::io::AsyncWriteExt::write_all(&mut stream, &[0, 0, 0, 8, 1, 2, 3, 4, 0xff, 0xfe]).await.expect("writes");
    drop(stream);
    let client = common::connect(&server).await;
    assert!(!client.simple_query("SELECT 1").await.expect("serves").is_empty());
    server.shutdown().await;
}

/// A query string of comments only, as pgx's `-- ping` (Grafana's health
/// check): EmptyQueryResponse, then ReadyForQuery, as PostgreSQL answers.
#[tokio::test]
async fn comments_only_get_an_empty_query_response() {
    let server = common::start_server().await;
    let mut raw = Raw::connect(server.local_addr()).await;
    for sql in ["-- ping", "/* nothing */", ";"] {
        raw.query(sql).await;
        let messages = raw.until_ready().await;
        let tags: Vec<u8> = messages.iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, vec![b'I', b'Z'], "{sql:?}: {messages:?}");
    }
    raw.close().await;
    server.shutdown().await;
}

/// A 2,000-term `1 + 1 + ...` used to overflow a worker's stack and abort
/// the server, and `coalesce` nested 20 deep took over 20 s to parse: both
/// are refused at once with 54001, for read-only users too, and the server
/// keeps serving.
#[tokio::test]
async fn statements_too_deep_to_plan_are_refused_with_54001() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    let chain = format!("SELECT {}", vec!["1"; 2000].join(" + "));
    let nested = format!("SELECT {}1{}", "coalesce(".repeat(20), ", 1)".repeat(20));
    for sql in [chain, nested] {
        let started = std::time::Instant::now();
        let err = client.simple_query(&sql).await.expect_err("too complex");
        assert_eq!(err.code().map(|c| c.code()), Some("54001"), "{err:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
        let err = client.prepare(&sql).await.expect_err("too complex, prepared");
        assert_eq!(err.code().map(|c| c.code()), Some("54001"), "{err:?}");
    }
    let rows = client.simple_query("SELECT 1 + 1").await.expect("still serving");
    assert_eq!(rows.len(), 3, "its columns, one row and its command tag: {rows:?}");
    server.shutdown().await;
}

/// Malformed protocol messages used to panic the connection's task (a Bind
/// with a parameter length of 0x7fffffff or a count of -1, truncated Parse,
/// Execute, Describe and Close), and bytes after the NUL of a Query were
/// run as a second message. Each now gets FATAL 08P01 and the connection
/// closes; nothing else runs, and the server keeps serving.
#[tokio::test]
async fn malformed_messages_get_08p01_and_nothing_is_smuggled() {
    let server = common::start_server().await;
    let setup = common::connect(&server).await;
    setup.batch_execute("CREATE STREAM s (k int); CREATE VIEW v AS SELECT count(*) AS n FROM s").await.expect("ddl");
    let bind = |tail: &[u8]| [b"\0\0\0\0".to_vec(), tail.to_vec()].concat();
    let mut smuggled = b"SELECT 1\0".to_vec();
    smuggled.push(b'Q');
    let inner = b"INSERT INTO s VALUES (1)\0";
    smuggled.extend_from_slice(&((inner.len() + 4) as i32).to_be_bytes());
    smuggled.extend_from_slice(inner);
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        ("a parameter length of 0x7fffffff", b'B', bind(&[0, 1, 0x7f, 0xff, 0xff, 0xff, b'1', 0, 0])),
        ("a parameter count of -1", b'B', bind(&[0xff, 0xff, 0, 0])),
        ("a truncated Parse", b'P', b"\0SELECT 1".to_vec()),
        ("a truncated Execute", b'E', b"\0\0".to_vec()),
        ("a truncated Describe", b'D', Vec::new()),
        ("a truncated Close", b'C', b"S".to_vec()),
        ("a Query smuggling a second message", b'Q', smuggled),
    ];
    for (what, tag, body) in cases {
        let mut raw = Raw::connect(server.local_addr()).await;
        raw.send(tag, &body).await;
        raw.send(b'S', &[]).await;
        let (kind, fields) = raw.read().await;
        assert_eq!(kind, b'E', "{what}: an ErrorResponse");
        let text = String::from_utf8_lossy(&fields).to_string();
        assert!(text.contains("C08P01") && text.contains("FATAL"), "{what}: {text}");
        assert!(raw.closed().await, "{what}: the connection is closed");
    }
    assert_eq!(count_of(&setup, "v").await, 0, "the smuggled INSERT never ran");
    assert!(!setup.simple_query("SELECT 1").await.expect("still serving").is_empty());
    server.shutdown().await;
}
