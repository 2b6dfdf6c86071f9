//! Authentication and TLS against the real `eddy` binary, configured with a
//! TOML file (`--config`): SCRAM-SHA-256 and md5 passwords, TLS with a
//! certificate made by openssl, and a read-only user refused every write
//! with SQLSTATE 42501. psql and tokio-postgres are the clients.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::process::EddyProcess;
use tokio_postgres::NoTls;

/// A directory with `eddy.toml` (and, with `tls`, a certificate and key).
fn config_dir(name: &str, method: &str, tls: bool) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("auth-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the config directory");
    let mut toml = format!(
        "[auth]\nmethod = \"{method}\"\n\n\
         [[auth.users]]\nname = \"app\"\npassword = \"app-secret\"\n\n\
         [[auth.users]]\nname = \"dash\"\npassword = \"dash-secret\"\nread_only = true\n"
    );
    if tls {
        let status = Command::new("openssl")
            .current_dir(&dir)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-keyout", "server.key", "-out", "server.crt", "-days", "2", "-subj", "/CN=localhost"])
            .output()
            .expect("run openssl (tests/run.sh installs it)");
        assert!(status.status.success(), "openssl: {}", String::from_utf8_lossy(&status.stderr));
        toml += "\n[tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n";
    }
    fs::write(dir.join("eddy.toml"), toml).expect("write eddy.toml");
    dir
}

fn start(name: &str, method: &str, tls: bool) -> EddyProcess {
    let dir = config_dir(name, method, tls);
    let config = dir.join("eddy.toml");
    EddyProcess::start_with(name, &["--config", config.to_str().expect("a UTF-8 path")])
}

/// psql with `conninfo`, `password` and the commands `-c`.
fn psql(conninfo: &str, password: &str, commands: &[&str]) -> Output {
    let mut cmd = Command::new("psql");
    cmd.arg("-X").arg(conninfo).env("PGPASSWORD", password).env_remove("PGSSLMODE");
    for c in commands {
        cmd.args(["-c", c]);
    }
    cmd.output().expect("run psql (tests/run.sh installs postgresql-client)")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

async fn connect(port: u16, user: &str, password: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let conn = format!("host=127.0.0.1 port={port} user={user} password={password} dbname=eddy");
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[test]
fn scram_over_tls_with_psql() {
    let server = start("scram-tls", "scram-sha-256", true);
    let tls = format!("host=127.0.0.1 port={} user=app dbname=eddy sslmode=require", server.port);
    let out = psql(
        &tls,
        "app-secret",
        &[
            "\\conninfo",
            "CREATE STREAM s (k int)",
            "CREATE VIEW v AS SELECT k, count(*) AS n FROM s GROUP BY k",
            "INSERT INTO s VALUES (1), (1), (2)",
            "SELECT k, n FROM v ORDER BY k",
        ],
    );
    let all = text(&out);
    assert!(out.status.success(), "psql over TLS failed:\n{all}");
    assert!(all.contains("SSL connection (protocol: TLSv1."), "no TLS in \\conninfo:\n{all}");
    assert!(all.contains(" 1 | 2\n") && all.contains(" 2 | 1\n"), "the view over TLS:\n{all}");

    let wrong = psql(&tls, "not-the-password", &["SELECT 1"]);
    assert!(!wrong.status.success(), "a wrong password was accepted");
    assert!(
        // pgwire names the user of the SCRAM exchange, which libpq leaves empty.
        text(&wrong).to_lowercase().contains("password authentication failed for user"),
        "{}",
        text(&wrong)
    );
    let unknown = psql(&tls.replace("user=app", "user=mallory"), "app-secret", &["SELECT 1"]);
    assert!(!unknown.status.success(), "an unknown user was accepted");

    // Without TLS, SCRAM still protects the password.
    let plain = format!("host=127.0.0.1 port={} user=app dbname=eddy sslmode=disable", server.port);
    let out = psql(&plain, "app-secret", &["SELECT count(*) FROM v"]);
    assert!(out.status.success(), "psql without TLS: {}", text(&out));
}

#[tokio::test]
async fn a_read_only_user_reads_but_cannot_write() {
    let server = start("read-only", "scram-sha-256", false);
    let app = connect(server.port, "app", "app-secret").await.expect("app connects");
    app.batch_execute(
        "CREATE STREAM s (k int, v int); CREATE VIEW v AS SELECT k, sum(v) AS total FROM s GROUP BY k; \
         INSERT INTO s VALUES (1, 10), (2, 5)",
    )
    .await
    .expect("app writes");

    let dash = connect(server.port, "dash", "dash-secret").await.expect("dash connects");
    let rows = dash.query("SELECT k, total FROM v ORDER BY k", &[]).await.expect("dash reads the view");
    assert_eq!(rows.len(), 2);
    let names = dash.query("SELECT name FROM pipelinedb.views", &[]).await.expect("dash reads the catalog");
    assert_eq!(names.len(), 1);
    for write in [
        "INSERT INTO s VALUES (3, 1)",
        "CREATE STREAM t (x int)",
        "CREATE VIEW w AS SELECT count(*) FROM s",
        "DROP VIEW v",
        "SELECT truncate_continuous_view('v')",
        "COPY s FROM STDIN",
        "CHECKPOINT",
        "SELECT pipeline_kafka.add_broker('localhost:9092')",
    ] {
        let err = dash.batch_execute(write).await.expect_err(write);
        let db = err.as_db_error().unwrap_or_else(|| panic!("{write}: {err}"));
        assert_eq!(db.code().code(), "42501", "{write}: {db}");
        assert!(db.message().contains("user \"dash\" is read-only"), "{write}: {}", db.message());
    }
    // The extended protocol (Parse/Bind/Execute, as tokio-postgres'
    // `execute`, JDBC and PDO's native prepares send it) and EXPLAIN
    // ANALYZE, which runs its statement, are refused too.
    let extended: [(&str, &[&(dyn tokio_postgres::types::ToSql + Sync)]); 4] = [
        ("INSERT INTO s VALUES ($1, $2)", &[&4i32, &100i32]),
        ("INSERT INTO s VALUES (5, 100)", &[]),
        ("EXPLAIN ANALYZE INSERT INTO s VALUES (6, 100)", &[]),
        ("EXECUTE ins", &[]),
    ];
    dash.batch_execute("PREPARE ins AS INSERT INTO s VALUES (7, 100)").await.expect("PREPARE only records");
    for (write, params) in extended {
        let err = dash.execute(write, params).await.expect_err(write);
        let db = err.as_db_error().unwrap_or_else(|| panic!("{write}: {err}"));
        assert_eq!(db.code().code(), "42501", "{write}: {db}");
    }
    let err = dash.batch_execute("EXPLAIN ANALYZE INSERT INTO s VALUES (8, 100)").await.expect_err("explain analyze");
    assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err}");
    // A plain EXPLAIN only describes the plan, as in PostgreSQL.
    dash.batch_execute("EXPLAIN INSERT INTO s VALUES (9, 100)").await.expect("EXPLAIN without ANALYZE");
    pdo_is_refused(server.port);

    // Nothing dash tried landed, and the session is still usable.
    let total: i64 = dash.query_one("SELECT sum(total)::bigint FROM v", &[]).await.expect("read").get(0);
    assert_eq!(total, 15);

    let refused = connect(server.port, "dash", "wrong").await.expect_err("a wrong password");
    assert!(format!("{refused:?}").to_lowercase().contains("password authentication failed"), "{refused:?}");
}

/// PHP PDO with native (server-side) prepares, as Laravel runs it: the
/// read-only user's prepared INSERT fails with 42501.
fn pdo_is_refused(port: u16) {
    let script = format!(
        r#"$db = new PDO("pgsql:host=127.0.0.1;port={port};dbname=eddy", "dash", "dash-secret");
        $db->setAttribute(PDO::ATTR_EMULATE_PREPARES, false);
        $db->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
        try {{ $st = $db->prepare("INSERT INTO s VALUES (?, ?)"); $st->execute([10, 100]); echo "inserted\n"; }}
        catch (PDOException $e) {{ echo $e->getCode(), "\n"; }}"#
    );
    let out = Command::new("php").args(["-r", &script]).output().expect("run php (tests/run.sh installs php-pgsql)");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42501", "{}", text(&out));
}

#[tokio::test]
async fn md5_passwords() {
    let server = start("md5", "md5", false);
    let app = connect(server.port, "app", "app-secret").await.expect("app connects with md5");
    let one: i32 = app.query_one("SELECT 1::int4", &[]).await.expect("query").get(0);
    assert_eq!(one, 1);
    let refused = connect(server.port, "app", "wrong").await.expect_err("a wrong md5 password");
    assert!(format!("{refused:?}").to_lowercase().contains("password authentication failed"), "{refused:?}");
    let out = psql(
        &format!("host=127.0.0.1 port={} user=dash dbname=eddy", server.port),
        "dash-secret",
        &["SELECT 40 + 2 AS answer"],
    );
    assert!(out.status.success() && text(&out).contains("42"), "psql with md5: {}", text(&out));
}

#[test]
fn a_bad_config_file_is_refused_with_its_reason() {
    let dir = config_dir("bad", "ldap", false);
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["--ephemeral", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.join("eddy.toml"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run eddy");
    assert!(!out.status.success());
    let log = text(&out);
    assert!(
        log.contains("auth method \\\"ldap\\\" is not one of") || log.contains("auth method \"ldap\" is not one of"),
        "{log}"
    );
}
