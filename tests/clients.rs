//! Real clients against the real `eddy` binary: psql (from a script, from a
//! pipe, on a terminal, and its catalog meta-commands), pgjdbc, psycopg2,
//! and PHP PDO.
//!
//! Each test starts `eddy` on a free loopback port with its own data
//! directory, runs one client, and compares what the client printed with the
//! expected output kept beside its script in `tests/clients/` (`*.out`, in the
//! manner of PostgreSQL's regression tests). That output is what PostgreSQL
//! 15 prints for the same scripts with tables in place of streams, apart from
//! the command tags of Eddy's own statements and the `LINE 1: ...` caret that
//! PostgreSQL adds under errors. The clients are not Rust crates:
//! `bash tests/run.sh` installs them (Debian's postgresql-client, php-cli and
//! php-pgsql). A missing client fails its test, so CI cannot pass without it.

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::process::EddyProcess;

/// How long one client run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `tests/clients/`, where the client scripts and their expected output live.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Fails unless `program` runs; the clients are installed by `tests/run.sh`.
fn require(program: &str, args: &[&str], package: &str) {
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        ok,
        "`{program} {}` failed: install {package} (`bash tests/run.sh` does){}",
        args.join(" "),
        if ci { "; CI must have it" } else { "" }
    );
}

/// A client's exit status and output.
struct ClientRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with `stdin` as its input, killing it after [`CLIENT_TIMEOUT`].
/// With `merge`, stderr goes into stdout, in the order the client wrote them.
fn run_client(mut cmd: Command, stdin: &str, merge: bool, out_dir: &Path) -> ClientRun {
    for var in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGSERVICE",
        "PGOPTIONS",
        "PGSSLMODE",
        "PSQLRC",
        "PAGER",
        "PSQL_PAGER",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("LC_ALL", "C.UTF-8").env("PGCONNECT_TIMEOUT", "10");
    let stdout_path = out_dir.join("client.stdout");
    let stderr_path = out_dir.join("client.stderr");
    let stdout = File::create(&stdout_path).expect("create client.stdout");
    let stderr = if merge {
        stdout.try_clone().expect("clone client.stdout")
    } else {
        File::create(&stderr_path).expect("create client.stderr")
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        // A client that stops reading early closes the pipe; that is its business.
        let _ = input.write_all(stdin.as_bytes());
    }
    let status = wait_with_timeout(&mut child, &cmd);
    ClientRun {
        status,
        stdout: fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

fn wait_with_timeout(child: &mut Child, cmd: &Command) -> ExitStatus {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("poll the client") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {CLIENT_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts `actual` equals the expected output file `tests/clients/<name>`;
/// on a mismatch, shows the first differing line and the whole output.
fn assert_output(name: &str, actual: &str) {
    let expected =
        fs::read_to_string(clients_dir().join(name)).unwrap_or_else(|e| panic!("read tests/clients/{name}: {e}"));
    if actual == expected {
        return;
    }
    let (exp, act): (Vec<_>, Vec<_>) = (expected.lines().collect(), actual.lines().collect());
    let line = (0..exp.len().max(act.len())).find(|&i| exp.get(i) != act.get(i)).unwrap_or(exp.len());
    panic!(
        "output differs from tests/clients/{name} at line {}:\n  want: {:?}\n  got:  {:?}\n--- whole output ---\n{actual}--- end ---",
        line + 1,
        exp.get(line),
        act.get(line),
    );
}

fn psql(server: &EddyProcess) -> Command {
    let mut cmd = Command::new("psql");
    cmd.current_dir(clients_dir())
        .args(["-X", "-h", "127.0.0.1", "-p"])
        .arg(server.port.to_string())
        .args(["-U", "eddy", "-d", "eddy"]);
    cmd
}

/// psql runs `psql_session.sql`: DDL, INSERT, `\copy` and inline COPY, reads,
/// and an error it reports before going on.
#[test]
fn psql_runs_a_script() {
    require("psql", &["--version"], "postgresql-client");
    let server = EddyProcess::start("psql-script");
    let mut cmd = psql(&server);
    cmd.args(["-a", "-v", "ON_ERROR_STOP=0", "-f", "psql_session.sql"]);
    let run = run_client(cmd, "", true, &server.dir);
    assert!(run.status.success(), "psql failed: {}\n{}", run.status, run.stdout);
    assert_output("psql_session.out", &run.stdout);
}

/// psql's meta-commands over the catalog: `\d`, `\dt`, `\dv`, `\d name`,
/// `\df`, `\l`, then `\copy` into a stream, `\x` and `\timing`.
#[test]
fn psql_describes_streams_and_views() {
    require("psql", &["--version"], "postgresql-client");
    let server = EddyProcess::start("psql-catalog");
    let mut cmd = psql(&server);
    cmd.args(["-a", "-v", "ON_ERROR_STOP=0", "-f", "psql_catalog.sql"]);
    let run = run_client(cmd, "", true, &server.dir);
    assert!(run.status.success(), "psql failed: {}\n{}", run.status, run.stdout);
    let timed = run.stdout.lines().filter(|l| l.starts_with("Time: ") && l.ends_with(" ms")).count();
    assert_eq!(timed, 1, "one \\timing line in:\n{}", run.stdout);
    let output: String = run
        .stdout
        .lines()
        .map(|l| if l.starts_with("Time: ") { "Time: N ms\n".to_string() } else { format!("{l}\n") })
        .collect();
    assert_output("psql_catalog.out", &output);
}

const PIPED_SESSION: &str = "\
CREATE STREAM s (k int, v float8);
CREATE CONTINUOUS VIEW v AS SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k;
INSERT INTO s (k, v) VALUES (1, 0.5), (2, 1.25), (1, 2.25);
SELECT * FROM v ORDER BY k;
SELECT * FROM nope;
SELECT n FROM v WHERE k = 2;
\\q
SELECT 'not reached';
";

/// psql reading its commands from a pipe, as `echo ... | psql` does.
#[test]
fn psql_reads_commands_from_a_pipe() {
    require("psql", &["--version"], "postgresql-client");
    let server = EddyProcess::start("psql-pipe");
    let run = run_client(psql(&server), PIPED_SESSION, false, &server.dir);
    assert!(run.status.success(), "psql failed: {}\n{}{}", run.status, run.stdout, run.stderr);
    let want_stdout = "\
CREATE STREAM
CREATE VIEW
INSERT 0 3
 k | n | total 
---+---+-------
 1 | 2 |  2.75
 2 | 1 |  1.25
(2 rows)

 n 
---
 1
(1 row)

";
    assert_eq!(run.stdout, want_stdout, "psql's stdout");
    assert_eq!(run.stderr, "ERROR:  relation \"nope\" does not exist\n", "psql's stderr");
}

/// psql on a terminal (a pty from `script`): the interactive prompt, a
/// query, an error, and `\q`.
#[test]
fn psql_interactive_on_a_terminal() {
    require("psql", &["--version"], "postgresql-client");
    require("script", &["--version"], "bsdutils");
    let server = EddyProcess::start("psql-tty");
    let psql = format!("psql -X -P pager=off -h 127.0.0.1 -p {} -U eddy -d eddy", server.port);
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &psql, "/dev/null"]).env("TERM", "dumb");
    let input = "SELECT 40 + 2 AS answer;\nSELECT * FROM nope;\n\\q\n";
    let run = run_client(cmd, input, true, &server.dir);
    let screen = run.stdout.replace("\r\n", "\n");
    assert!(run.status.success(), "psql on a tty failed: {}\n{screen}", run.status);
    for want in [
        "eddy=# SELECT 40 + 2 AS answer;\n answer \n--------\n     42\n(1 row)\n",
        "eddy=# SELECT * FROM nope;\nERROR:  relation \"nope\" does not exist\n",
        "eddy=# \\q\n",
    ] {
        assert!(screen.contains(want), "the terminal lacks {want:?}:\n{screen}");
    }
}

/// pgcli (PyPI, in the virtualenv) on a terminal that tmux keeps: it
/// starts (its completion loader reads the catalog: schemas, tables,
/// views, columns, functions with their argument types, data types),
/// completes a table's name and a stream's column names as they are typed,
/// and runs a query.
#[test]
fn pgcli_completes_names_on_a_terminal() {
    require("tmux", &["-V"], "tmux");
    let python = venv_python();
    let pgcli = Path::new(&python).with_file_name("pgcli");
    let pgcli = pgcli.to_string_lossy().to_string();
    require(&pgcli, &["--version"], "pgcli (tests/run.sh installs it in a virtualenv)");
    let server = EddyProcess::start("pgcli");
    let mut setup = psql(&server);
    setup.args([
        "-c",
        "CREATE TABLE users (id int PRIMARY KEY, name text); CREATE STREAM clicks (url text, user_id int)",
    ]);
    assert!(run_client(setup, "", true, &server.dir).status.success(), "setup");
    let tmux = Tmux { socket: server.dir.join("tmux.sock") };
    let rc = server.dir.join("pgclirc");
    let command =
        format!("{pgcli} --pgclirc {} --less-chatty -w -h 127.0.0.1 -p {} -U eddy eddy", rc.display(), server.port);
    tmux.run(&["new-session", "-d", "-s", "pgcli", "-x", "160", "-y", "40", &command]);
    tmux.wait_for(&["eddy>"]);
    tmux.complete("SELECT * FROM use", &["users", "table"]);
    tmux.complete("SELECT * FROM clicks WHERE u", &["url", "user_id", "column"]);
    // Functions load last, from pg_proc with their argument types.
    tmux.complete("SELECT * FROM array_unnest_sup", &["array_unnest_support()", "function"]);
    tmux.run(&["send-keys", "-t", "pgcli", "C-u", "SELECT 40 + 2 AS answer", "Enter"]);
    tmux.wait_for(&["answer", "42"]);
    let screen = tmux.run(&["capture-pane", "-t", "pgcli", "-p", "-S", "-"]);
    assert!(!screen.contains("Traceback"), "pgcli failed:\n{screen}");
}

/// A tmux server of its own, for one test.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-S").arg(&self.socket).args(args).output().expect("tmux runs");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Types `text` on a fresh line and waits until the completions show
    /// every one of `wanted`. pgcli loads the catalog in the background
    /// and completes on each keystroke: until it has loaded, the last
    /// character is typed again every second.
    fn complete(&self, text: &str, wanted: &[&str]) {
        self.run(&["send-keys", "-t", "pgcli", "C-u", text]);
        let last = &text[text.len() - 1..];
        let started = Instant::now();
        loop {
            let screen = self.run(&["capture-pane", "-t", "pgcli", "-p"]);
            if wanted.iter().all(|w| screen.contains(w)) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no completion {wanted:?} of {text:?}:\n{screen}");
            thread::sleep(Duration::from_secs(1));
            self.run(&["send-keys", "-t", "pgcli", "BSpace", last]);
        }
    }

    /// Waits (up to a minute) until the screen shows every one of `wanted`.
    fn wait_for(&self, wanted: &[&str]) {
        let started = Instant::now();
        loop {
            let screen = self.run(&["capture-pane", "-t", "pgcli", "-p"]);
            if wanted.iter().all(|w| screen.contains(w)) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the screen lacks {wanted:?}:\n{screen}");
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(&self.socket).arg("kill-server").output();
    }
}

/// pgjdbc (Debian's libpostgresql-jdbc-java on Java 17): DatabaseMetaData
/// and PreparedStatements, see Jdbc.java.
#[test]
fn jdbc() {
    require("javac", &["-version"], "openjdk-17-jdk-headless");
    let jar = Path::new("/usr/share/java/postgresql.jar");
    assert!(jar.exists(), "{} is missing: install libpostgresql-jdbc-java (`bash tests/run.sh` does)", jar.display());
    let server = EddyProcess::start("jdbc");
    let classes = server.dir.join("classes");
    fs::create_dir_all(&classes).expect("create the classes directory");
    let mut javac = Command::new("javac");
    javac.arg("-d").arg(&classes).arg(clients_dir().join("Jdbc.java"));
    let built = run_client(javac, "", true, &server.dir);
    assert!(built.status.success(), "javac failed:\n{}", built.stdout);
    let mut java = Command::new("java");
    java.arg("-cp").arg(format!("{}:{}", jar.display(), classes.display())).arg("Jdbc").arg(server.port.to_string());
    let run = run_client(java, "", false, &server.dir);
    assert!(run.status.success(), "Jdbc failed ({}):\n{}\n{}", run.status, run.stdout, run.stderr);
    assert_output("jdbc.out", &run.stdout);
}

/// psycopg2 (Debian's python3-psycopg2 on /usr/bin/python3): parameters,
/// `copy_expert` into a stream, typed results, PREPARE/EXECUTE, errors; see
/// psycopg2_client.py.
#[test]
fn psycopg2() {
    let python = "/usr/bin/python3";
    require(python, &["-c", "import psycopg2"], "python3-psycopg2");
    run_python_client(python, "psycopg2_client.py", "psycopg2.out");
}

/// Runs `script` from `tests/clients/` with `python` against a fresh
/// server; its output must equal `expected`.
fn run_python_client(python: &str, script: &str, expected: &str) {
    let server = EddyProcess::start(script.trim_end_matches(".py"));
    let mut cmd = Command::new(python);
    cmd.current_dir(clients_dir()).arg(script).arg(server.port.to_string());
    let run = run_client(cmd, "", false, &server.dir);
    assert!(run.status.success(), "{script} failed ({}):\n{}\n{}", run.status, run.stdout, run.stderr);
    assert_output(expected, &run.stdout);
}

/// The Python of the virtualenv `tests/run.sh` makes (SQLAlchemy, asyncpg).
fn venv_python() -> String {
    std::env::var("EDDY_SQLALCHEMY_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/eddy-tools/sqlalchemy-venv/bin/python", std::env::var("HOME").unwrap_or_default())
    })
}

/// The directory whose `node_modules` holds pg, pg-copy-streams and
/// postgres (npm packages `tests/run.sh` installs).
fn node_dir() -> String {
    std::env::var("EDDY_NODE_DIR")
        .unwrap_or_else(|_| format!("{}/.cache/eddy-tools/node", std::env::var("HOME").unwrap_or_default()))
}

/// node-postgres (with pg-copy-streams) and postgres.js from npm: writes
/// with RETURNING, pagination, `= ANY($1)` with arrays, COPY TO and an
/// error's SQLSTATE; see node_clients.mjs.
#[test]
fn node_postgres_and_postgres_js() {
    require("node", &["--version"], "nodejs");
    let dir = node_dir();
    let installed =
        ["pg", "pg-copy-streams", "postgres"].iter().all(|m| Path::new(&dir).join("node_modules").join(m).is_dir());
    assert!(installed, "pg, pg-copy-streams and postgres are not in {dir}/node_modules: tests/run.sh installs them");
    let server = EddyProcess::start("node-clients");
    let mut cmd = Command::new("node");
    cmd.current_dir(clients_dir()).env("EDDY_NODE_DIR", &dir).arg("node_clients.mjs").arg(server.port.to_string());
    let run = run_client(cmd, "", false, &server.dir);
    assert!(run.status.success(), "node_clients.mjs failed ({}):\n{}\n{}", run.status, run.stdout, run.stderr);
    assert_output("node_clients.out", &run.stdout);
}

/// SQLAlchemy 2 from PyPI, in the virtualenv `tests/run.sh` makes over
/// Debian's Python and psycopg2: `inspect(engine)` as Superset uses it; see
/// sqlalchemy_inspect.py.
#[test]
fn sqlalchemy_inspect() {
    let python = venv_python();
    require(&python, &["-c", "import sqlalchemy, psycopg2"], "SQLAlchemy (tests/run.sh installs it in a virtualenv)");
    run_python_client(&python, "sqlalchemy_inspect.py", "sqlalchemy.out");
}

/// SQLAlchemy 2 on psycopg 3, and pandas, from PyPI (in the same
/// virtualenv): reflection with `Table(autoload_with=)`, `read_sql_table`,
/// `to_sql`, a rollback; see sqlalchemy_pandas.py.
#[test]
fn sqlalchemy_psycopg3_and_pandas() {
    let python = venv_python();
    require(
        &python,
        &["-c", "import sqlalchemy, psycopg, pandas"],
        "pandas (tests/run.sh installs it in a virtualenv)",
    );
    run_python_client(&python, "sqlalchemy_pandas.py", "sqlalchemy_pandas.out");
}

/// asyncpg from PyPI (in the same virtualenv): a pool's acquire/release
/// cycles, whose release resets each connection with `SELECT
/// pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`; see
/// asyncpg_pool.py.
#[test]
fn asyncpg_pool() {
    let python = venv_python();
    require(&python, &["-c", "import asyncpg"], "asyncpg (tests/run.sh installs it in a virtualenv)");
    run_python_client(&python, "asyncpg_pool.py", "asyncpg_pool.out");
}

/// psycopg 3 from PyPI (in the same virtualenv): writes with RETURNING,
/// executemany, `= ANY` with a list, binary COPY in and out; see
/// psycopg3_client.py.
#[test]
fn psycopg3() {
    let python = venv_python();
    require(&python, &["-c", "import psycopg"], "psycopg 3 (tests/run.sh installs it in a virtualenv)");
    run_python_client(&python, "psycopg3_client.py", "psycopg3.out");
}

/// Laravel's way with PDO: native prepares freed by DEALLOCATE inside a
/// transaction, DEALLOCATE ALL, and memory over many prepare-and-free cycles
/// on one connection: see pdo_transactions.php.
#[test]
fn php_pdo_transactions_and_deallocate() {
    require("php", &["--version"], "php-cli");
    require("php", &["-r", "exit(extension_loaded('pdo_pgsql') ? 0 : 1);"], "php-pgsql");
    let server = EddyProcess::start("php-pdo-deallocate");
    let mut cmd = Command::new("php");
    cmd.current_dir(clients_dir()).arg("pdo_transactions.php");
    cmd.arg(server.port.to_string()).arg(server.pid().to_string()).arg("2000");
    let run = run_client(cmd, "", false, &server.dir);
    assert!(
        run.status.success() && run.stderr.is_empty(),
        "pdo_transactions.php failed ({}):\n{}\n--- stderr ---\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    assert_output("pdo_transactions.out", &run.stdout);
}

/// Runs the PHP program `script` (which takes the port) against a new
/// server, and compares what it prints with `expected`.
fn run_php_client(script: &str, expected: &str) {
    let server = EddyProcess::start(script.trim_end_matches(".php"));
    let mut cmd = Command::new("php");
    cmd.current_dir(clients_dir()).arg(script).arg(server.port.to_string());
    let run = run_client(cmd, "", false, &server.dir);
    assert!(run.status.success(), "{script} failed ({}):\n{}\n{}", run.status, run.stdout, run.stderr);
    assert_output(expected, &run.stdout);
}

/// Laravel's database layer (Debian's php-laravel-framework): a migration,
/// insertGetId, transactions, a savepoint, pagination and whereIn; see
/// laravel.php.
#[test]
fn laravel() {
    require("php", &["-r", "exit(extension_loaded('pdo_pgsql') ? 0 : 1);"], "php-pgsql");
    require("test", &["-f", "/usr/share/php/Illuminate/Database/autoload.php"], "php-laravel-framework");
    run_php_client("laravel.php", "laravel.out");
}

/// Doctrine DBAL's schema manager (Debian's php-doctrine-dbal):
/// listTableNames, listViews, listTableColumns and createSchema; see
/// doctrine.php.
#[test]
fn doctrine_dbal() {
    require("php", &["-r", "exit(extension_loaded('pdo_pgsql') ? 0 : 1);"], "php-pgsql");
    require("test", &["-f", "/usr/share/php/Doctrine/DBAL/autoload.php"], "php-doctrine-dbal");
    run_php_client("doctrine.php", "doctrine.out");
}

/// PHP PDO (pdo_pgsql), with emulated and server-side prepares: see pdo.php.
#[test]
fn php_pdo() {
    require("php", &["--version"], "php-cli");
    require("php", &["-r", "exit(extension_loaded('pdo_pgsql') ? 0 : 1);"], "php-pgsql");
    let server = EddyProcess::start("php-pdo");
    let mut cmd = Command::new("php");
    cmd.current_dir(clients_dir()).arg("pdo.php").arg(server.port.to_string());
    let run = run_client(cmd, "", false, &server.dir);
    let failed: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with("ok ")).collect();
    assert!(
        run.status.success() && run.stderr.is_empty(),
        "pdo.php failed ({}):\n{}\n--- stderr ---\n{}",
        run.status,
        failed.join("\n"),
        run.stderr
    );
    assert_output("pdo.out", &run.stdout);
}
