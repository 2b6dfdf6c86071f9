//! Changes pushed to real clients: LISTEN/NOTIFY delivered to an idle
//! session (tokio-postgres), psql printing notifications, psql and psycopg2
//! streaming `COPY (SUBSCRIBE ...) TO STDOUT` while another session writes,
//! and PHP PDO woken by `pgsqlGetNotify` and reading a subscription through
//! a cursor (`tests/clients/pdo_push.php`, and `sql/examples/cqrs.php`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::process::EddyProcess;
use futures::StreamExt;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification};

/// How long a client may take to show an expected line.
const LINE_TIMEOUT: Duration = Duration::from_secs(20);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

/// A tokio-postgres client on `port`, and the notifications its connection
/// receives, as they arrive.
async fn listener(port: u16) -> (Client, tokio::sync::mpsc::UnboundedReceiver<Notification>) {
    let dsn = format!("host=127.0.0.1 port={port} user=eddy dbname=eddy");
    let (client, mut connection) = tokio_postgres::connect(&dsn, NoTls).await.expect("connects");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send(n);
            }
        }
    });
    (client, rx)
}

async fn next_notification(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notification>) -> Notification {
    tokio::time::timeout(LINE_TIMEOUT, rx.recv()).await.expect("a notification in time").expect("the connection lives")
}

/// A session that only LISTENs and then sits idle receives every NOTIFY
/// of another session, pg_notify's too, and a view's notification of each
/// write, without sending anything.
#[test]
fn notifications_reach_an_idle_session() {
    let server = EddyProcess::start("push-idle");
    runtime().block_on(async {
        let (listening, mut notes) = listener(server.port).await;
        let (sender, _) = listener(server.port).await;
        listening.batch_execute("LISTEN orders; LISTEN totals").await.unwrap();
        sender.batch_execute("NOTIFY orders, 'first'").await.unwrap();
        let n = next_notification(&mut notes).await;
        assert_eq!((n.channel(), n.payload()), ("orders", "first"));
        assert_ne!(n.process_id(), 0, "a session's notification carries its process id");
        sender.execute("SELECT pg_notify($1, $2)", &[&"orders", &"second"]).await.unwrap();
        assert_eq!(next_notification(&mut notes).await.payload(), "second");

        sender
            .batch_execute(
                "CREATE STREAM events (customer text, amount bigint);
                 CREATE VIEW totals WITH (notify = 'totals') AS
                   SELECT customer, sum(amount) AS total FROM events GROUP BY customer;
                 INSERT INTO events VALUES ('ann', 10);
                 INSERT INTO events VALUES ('ann', 5);",
            )
            .await
            .unwrap();
        let first = next_notification(&mut notes).await;
        assert_eq!(first.channel(), "totals");
        assert!(
            first.payload().contains(r#""changes":[{"diff":1,"customer":"ann","total":10}]"#),
            "{}",
            first.payload()
        );
        let second = next_notification(&mut notes).await;
        assert!(
            second
                .payload()
                .contains(r#"[{"diff":-1,"customer":"ann","total":10},{"diff":1,"customer":"ann","total":15}]"#),
            "{}",
            second.payload()
        );

        // After UNLISTEN, nothing more arrives.
        listening.batch_execute("UNLISTEN *").await.unwrap();
        sender.batch_execute("NOTIFY orders, 'unheard'; INSERT INTO events VALUES ('bob', 1)").await.unwrap();
        listening.batch_execute("NOTIFY orders, 'also unheard'").await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(200), notes.recv()).await.is_err());
    });
}

/// Reads a client's stdout line by line, in a thread.
struct Lines {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Lines {
    fn spawn(mut cmd: Command) -> Lines {
        let mut child = cmd
            .env("LC_ALL", "C.UTF-8")
            .env_remove("PGOPTIONS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // A terminal ends its lines with \r\n.
                if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                    break;
                }
            }
        });
        Lines { child, lines }
    }

    /// The next `n` lines, sorted (rows of one epoch come in no set order).
    fn next(&self, n: usize) -> Vec<String> {
        let mut out: Vec<String> = (0..n)
            .map(|_| self.lines.recv_timeout(LINE_TIMEOUT).unwrap_or_else(|e| panic!("no line in time: {e}")))
            .collect();
        out.sort();
        out
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client streams `COPY (SUBSCRIBE totals) TO STDOUT` while the test
/// writes: the snapshot comes first, then each write's -1/+1, in epoch order.
fn streams_a_subscription(name: &str, client: impl FnOnce(u16) -> Command) {
    let server = EddyProcess::start(name);
    let rt = runtime();
    let (writer, _) = rt.block_on(listener(server.port));
    let write = |sql: &str| rt.block_on(writer.batch_execute(sql)).unwrap();
    write(
        "CREATE STREAM events (customer text, amount bigint);
         CREATE VIEW totals AS SELECT customer, sum(amount) AS total FROM events GROUP BY customer;
         INSERT INTO events VALUES ('ann', 10), ('bob', 2);",
    );
    let lines = Lines::spawn(client(server.port));
    assert_eq!(lines.next(2), vec!["1\t1\tann\t10", "1\t1\tbob\t2"], "the snapshot");
    write("INSERT INTO events VALUES ('ann', 5)");
    assert_eq!(lines.next(2), vec!["2\t-1\tann\t10", "2\t1\tann\t15"], "an update is a -1 and a +1");
    write("INSERT INTO events VALUES ('carl', 1)");
    assert_eq!(lines.next(1), vec!["3\t1\tcarl\t1"]);
    write("INSERT INTO events VALUES ('bob', 1); INSERT INTO events VALUES ('bob', 1)");
    assert_eq!(lines.next(2), vec!["4\t-1\tbob\t2", "4\t1\tbob\t3"]);
    assert_eq!(lines.next(2), vec!["5\t-1\tbob\t3", "5\t1\tbob\t4"], "epochs in order");
}

#[test]
fn psql_streams_copy_subscribe() {
    // On a terminal, as a person runs it: psql flushes COPY output to a
    // pipe only when the COPY ends, and a subscription does not end.
    streams_a_subscription("push-psql", |port| {
        let psql = format!("psql -X -h 127.0.0.1 -p {port} -U eddy -d eddy -c 'COPY (SUBSCRIBE totals) TO STDOUT'");
        let mut cmd = Command::new("script");
        cmd.args(["-qfec", &psql, "/dev/null"]);
        cmd
    });
}

#[test]
fn psycopg2_streams_copy_subscribe() {
    streams_a_subscription("push-psycopg2", |port| {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.current_dir(clients_dir()).arg("psycopg2_subscribe.py").arg(port.to_string());
        cmd
    });
}

/// psql prints a notification after the command that brought it, its own
/// NOTIFY's and a view's included.
#[test]
fn psql_prints_notifications() {
    let server = EddyProcess::start("push-psql-notify");
    let out = Command::new("psql")
        .current_dir(clients_dir())
        .args(["-X", "-h", "127.0.0.1", "-p", &server.port.to_string(), "-U", "eddy", "-d", "eddy"])
        .args(["-a", "-v", "ON_ERROR_STOP=1", "-f", "psql_notify.sql"])
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("psql runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "psql failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // Process ids differ from run to run.
    let normalized: String = stdout
        .lines()
        .map(|l| match l.rfind("with PID ") {
            Some(i) if !l.ends_with("PID 0.") => format!("{}with PID <pid>.\n", &l[..i]),
            _ => format!("{l}\n"),
        })
        .collect();
    let expected = std::fs::read_to_string(clients_dir().join("psql_notify.out")).expect("psql_notify.out");
    assert_eq!(normalized, expected);
}

/// Runs a PHP script with the server's port; every line it prints must
/// start with "ok ", and the output must equal `expected` when given.
fn run_php(name: &str, script: &Path, expected: Option<&str>) {
    let server = EddyProcess::start(name);
    let out = Command::new("php").arg(script).arg(server.port.to_string()).output().expect("php runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{} failed:\n{stdout}\n--- stderr ---\n{stderr}",
        script.display()
    );
    if let Some(expected) = expected {
        let want = std::fs::read_to_string(clients_dir().join(expected)).expect("the expected output");
        assert_eq!(stdout, want);
    }
}

/// PDO: LISTEN and `pgsqlGetNotify` receive a NOTIFY and a view's
/// notification; a cursor FETCH with a timeout reads a subscription.
#[test]
fn php_pdo_listens_and_fetches_a_subscription() {
    run_php("push-pdo", &clients_dir().join("pdo_push.php"), Some("pdo_push.out"));
}

/// The README's CQRS example: a PDO worker woken by the read model's
/// notification prints the new totals.
#[test]
fn php_cqrs_example() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/examples/cqrs.php");
    run_php("push-cqrs", &script, Some("cqrs.out"));
}

/// A subscription to a stream holds no snapshot and sees each write's
/// events, with their arrival_timestamp; dropping the stream ends it (55000).
#[test]
fn a_stream_subscription_sees_its_events() {
    let server = EddyProcess::start("push-stream");
    runtime().block_on(async {
        let (client, _) = listener(server.port).await;
        client.batch_execute("CREATE STREAM clicks (url text, ms int)").await.unwrap();
        client.batch_execute("DECLARE s CURSOR FOR SUBSCRIBE clicks").await.unwrap();
        let fetch = "FETCH ALL s WITH (timeout = '2s')";
        let rows = |messages: Vec<tokio_postgres::SimpleQueryMessage>| {
            messages
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..4).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect::<Vec<_>>().join(" ")
                            + if r.get(4).is_some_and(|t| t.starts_with("20")) { " stamped" } else { " unstamped" },
                    ),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        client.batch_execute("INSERT INTO clicks VALUES ('/a', 5), ('/b', 7)").await.unwrap();
        let got = rows(client.simple_query(fetch).await.unwrap());
        assert_eq!(got, ["1 1 /a 5 stamped", "1 1 /b 7 stamped"]);
        client.batch_execute("INSERT INTO clicks VALUES ('/c', 1)").await.unwrap();
        assert_eq!(rows(client.simple_query(fetch).await.unwrap()), ["2 1 /c 1 stamped"]);
        client.batch_execute("DROP STREAM clicks").await.unwrap();
        let e = client.simple_query(fetch).await.expect_err("the stream was dropped");
        assert_eq!(e.code().map(|c| c.code()), Some("55000"), "{e}");
    });
}
