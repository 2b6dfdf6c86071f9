//! Runs every `sql/**/*.slt` file against a fresh Eddy server over pgwire,
//! once with the simple query protocol and once with the extended protocol
//! (where results come back in binary and are decoded here by type).

mod common;

use std::error::Error as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

/// An error as the runner sees it: message and SQLSTATE.
#[derive(Debug)]
struct PgError {
    message: String,
    sqlstate: Option<String>,
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // "SQLSTATE: message", so a test can match both with one regex.
        match &self.sqlstate {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for PgError {}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => PgError { message: db.message().to_string(), sqlstate: Some(db.code().code().to_string()) },
            None => PgError { message: format!("{e} {:?}", e.source()), sqlstate: None },
        }
    }
}

struct Eddy {
    client: Client,
    extended: bool,
}

#[async_trait]
impl AsyncDB for Eddy {
    type Error = PgError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, PgError> {
        if self.extended { self.run_extended(sql).await } else { self.run_simple(sql).await }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        if self.extended { "eddy-extended" } else { "eddy-simple" }
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await
    }

    fn error_sql_state(err: &PgError) -> Option<String> {
        err.sqlstate.clone()
    }
}

impl Eddy {
    async fn run_simple(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, PgError> {
        let messages = self.client.simple_query(sql).await?;
        let mut rows = Vec::new();
        let mut columns = None;
        let mut count = 0;
        for m in messages {
            match m {
                SimpleQueryMessage::Row(row) => {
                    let cells = (0..row.len()).map(|i| row.get(i).map_or("NULL".to_string(), normalize)).collect();
                    rows.push(cells);
                }
                SimpleQueryMessage::RowDescription(d) => columns = Some(d.len()),
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        match columns {
            Some(n) => Ok(DBOutput::Rows { types: vec![DefaultColumnType::Any; n], rows }),
            None => Ok(DBOutput::StatementComplete(count)),
        }
    }

    async fn run_extended(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, PgError> {
        let stmt = self.client.prepare(sql).await?;
        if stmt.columns().is_empty() {
            let n = self.client.execute(&stmt, &[]).await?;
            return Ok(DBOutput::StatementComplete(n));
        }
        let result = self.client.query(&stmt, &[]).await?;
        let rows = result
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.get::<_, Option<AnyValue>>(i).map_or("NULL".to_string(), |v| normalize(&v.0)))
                    .collect()
            })
            .collect();
        Ok(DBOutput::Rows { types: vec![DefaultColumnType::Any; stmt.columns().len()], rows })
    }
}

/// Floats print the same whichever protocol carried them: at most 9
/// decimals, no trailing zeros.
fn normalize(value: &str) -> String {
    let looks_float = value.contains('.') || value.contains('e') || value.contains("inf") || value.contains("NaN");
    if looks_float
        && !value.contains(' ')
        && !value.contains('-') | value.starts_with('-')
        && let Ok(f) = value.parse::<f64>()
        && value.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+'))
    {
        let s = format!("{:.9}", f);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return if s == "-0" { "0".to_string() } else { s.to_string() };
    }
    if value.is_empty() { "(empty)".to_string() } else { value.to_string() }
}

/// Any binary-format value, decoded to text by its type.
struct AnyValue(String);

impl<'a> FromSql<'a> for AnyValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(AnyValue(binary::decode(ty, raw)?))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

mod binary {
    //! PostgreSQL binary formats, decoded independently of the server's encoder.
    use tokio_postgres::types::{FromSql, Type};

    type BoxError = Box<dyn std::error::Error + Sync + Send>;

    pub fn decode(ty: &Type, raw: &[u8]) -> Result<String, BoxError> {
        Ok(match *ty {
            Type::BOOL => if bool::from_sql(ty, raw)? { "t" } else { "f" }.to_string(),
            Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
            Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
            Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
            Type::FLOAT4 => f32::from_sql(ty, raw)?.to_string(),
            Type::FLOAT8 => f64::from_sql(ty, raw)?.to_string(),
            Type::TEXT | Type::VARCHAR | Type::JSON | Type::NAME | Type::BPCHAR | Type::UNKNOWN => {
                String::from_utf8(raw.to_vec())?
            }
            Type::JSONB => String::from_utf8(raw.get(1..).unwrap_or_default().to_vec())?,
            Type::NUMERIC => numeric(raw)?,
            Type::DATE => {
                let days = i32::from_be_bytes(raw.try_into()?);
                (epoch_date() + chrono::Duration::days(days as i64)).to_string()
            }
            Type::TIMESTAMP => timestamp(raw)?.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            Type::TIMESTAMPTZ => format!("{}+00", timestamp(raw)?.format("%Y-%m-%d %H:%M:%S%.f")),
            Type::INTERVAL => interval(raw)?,
            _ if matches!(ty.kind(), tokio_postgres::types::Kind::Array(_)) => array(ty, raw)?,
            _ => format!("<{} {} bytes>", ty.name(), raw.len()),
        })
    }

    fn epoch_date() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
    }

    fn timestamp(raw: &[u8]) -> Result<chrono::NaiveDateTime, BoxError> {
        let micros = i64::from_be_bytes(raw.try_into()?);
        Ok(epoch_date().and_hms_opt(0, 0, 0).unwrap_or_default() + chrono::Duration::microseconds(micros))
    }

    fn interval(raw: &[u8]) -> Result<String, BoxError> {
        let micros = i64::from_be_bytes(raw[0..8].try_into()?);
        let days = i32::from_be_bytes(raw[8..12].try_into()?);
        let months = i32::from_be_bytes(raw[12..16].try_into()?);
        Ok(format!("{months} mons {days} days {micros} us"))
    }

    fn numeric(raw: &[u8]) -> Result<String, BoxError> {
        let word = |i: usize| i16::from_be_bytes([raw[2 * i], raw[2 * i + 1]]);
        let ndigits = word(0) as usize;
        let weight = word(1) as i32;
        let sign = word(2) as u16;
        let dscale = word(3) as usize;
        if sign == 0xC000 {
            return Ok("NaN".into());
        }
        let digits: Vec<i32> = (0..ndigits).map(|i| word(4 + i) as i32).collect();
        let mut int_part = String::new();
        for w in 0..=weight.max(-1) {
            let d = digits.get(w as usize).copied().unwrap_or(0);
            if int_part.is_empty() { int_part = d.to_string() } else { int_part += &format!("{d:04}") }
        }
        if int_part.is_empty() {
            int_part = "0".into();
        }
        let mut frac = String::new();
        let mut w = weight + 1;
        while frac.len() < dscale {
            let d = if w < 0 { 0 } else { digits.get(w as usize).copied().unwrap_or(0) };
            frac += &format!("{d:04}");
            w += 1;
        }
        frac.truncate(dscale);
        let sign = if sign == 0x4000 { "-" } else { "" };
        Ok(if dscale > 0 { format!("{sign}{int_part}.{frac}") } else { format!("{sign}{int_part}") })
    }

    fn array(ty: &Type, raw: &[u8]) -> Result<String, BoxError> {
        let tokio_postgres::types::Kind::Array(elem) = ty.kind() else {
            return Err("not an array".into());
        };
        let int = |at: usize| -> Result<i32, BoxError> { Ok(i32::from_be_bytes(raw[at..at + 4].try_into()?)) };
        let ndim = int(0)?;
        if ndim == 0 {
            return Ok("{}".into());
        }
        let len = int(12)? as usize;
        let mut at = 12 + 8 * ndim as usize;
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            let n = int(at)?;
            at += 4;
            if n < 0 {
                items.push("NULL".to_string());
            } else {
                items.push(decode(elem, &raw[at..at + n as usize])?);
                at += n as usize;
            }
        }
        Ok(format!("{{{}}}", items.join(",")))
    }
}

fn slt_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("sql")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("sql/ is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "slt") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A file that starts with `# clock: manual` runs on a manual clock set to
/// 2026-01-01 00:00:00+00, which only `eddy_set_clock` and
/// `eddy_advance_clock` move: window tests never sleep.
const MANUAL_CLOCK_START: i64 = 1_767_225_600_000_000;

async fn run_file(path: &Path, extended: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut config = eddy::Config::default();
    if text.starts_with("# clock: manual") {
        config.manual_clock = Some(MANUAL_CLOCK_START);
    }
    let server = common::start_server_with(config).await;
    let addr = server.local_addr();
    let mut runner = Runner::new(move || async move {
        let conn_str = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", addr.port());
        let (client, connection) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok::<_, PgError>(Eddy { client, extended })
    });
    let label = if extended { "extended" } else { "simple" };
    runner.add_label(label);
    let outcome =
        runner.run_file_async(path).await.map_err(|e| format!("{} ({label}): {}", path.display(), e.display(true)));
    server.shutdown().await;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictests() {
    let filter = std::env::var("SLT").ok();
    let files: Vec<PathBuf> = slt_files()
        .into_iter()
        .filter(|f| filter.as_ref().is_none_or(|p| f.to_string_lossy().contains(p.as_str())))
        .collect();
    assert!(!files.is_empty(), "no .slt files found under sql/");
    let mut failures = Vec::new();
    for file in &files {
        for extended in [false, true] {
            if let Err(e) = run_file(file, extended).await {
                failures.push(e);
            }
        }
    }
    println!("ran {} slt files in both protocols, {} failures", files.len(), failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
