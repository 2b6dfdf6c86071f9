//! `COPY relation [(cols)] TO STDOUT` and `COPY (query) TO STDOUT`, in
//! text or CSV (`WITH (FORMAT csv, HEADER, DELIMITER ',', NULL '')`):
//! the rows of a view, a table or any query, as psql's `\copy ... to` and
//! drivers' `copy_to` read them. The server writes no files.

use datafusion::sql::sqlparser::ast;

use super::{Reply, Statement};
use crate::error::Result;
use crate::ingest::decode::{CopyFormat, FormatKind};
use crate::server::Session;
use crate::sql::SqlError;

/// A COPY out to the client.
#[derive(Debug, Clone)]
pub struct CopyTo {
    /// The rows to send.
    pub query: Box<ast::Statement>,
    /// How they are written.
    pub format: CopyFormat,
}

impl CopyTo {
    /// The statement for `COPY source TO STDOUT` with `format`.
    pub fn statement(source: ast::CopySource, format: CopyFormat) -> Result<Statement, SqlError> {
        let query = match source {
            ast::CopySource::Query(query) => ast::Statement::Query(query),
            ast::CopySource::Table { table_name, columns } => {
                let columns = match columns.is_empty() {
                    true => "*".to_string(),
                    false => columns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                };
                let sql = format!("SELECT {columns} FROM {table_name}");
                match crate::sql::parse_sql(&sql)?.pop() {
                    Some(Statement::Query(query)) => *query,
                    _ => return Err(SqlError::Syntax(format!("cannot copy from {table_name}"))),
                }
            }
        };
        Ok(Statement::CopyTo(CopyTo { query: Box::new(query), format }))
    }

    /// Runs the query; the wire layer sends its rows as COPY data.
    pub async fn execute(self, session: &Session) -> Result<Reply> {
        let plan = crate::query::plan(session, *self.query).await?;
        let (schema, batches) = crate::query::stream(session, plan, None).await?;
        Ok(Reply::CopyOut { schema, batches: super::RowStream(batches), format: self.format })
    }
}

/// One row as a line of `format`; `fields` are the row's values as text
/// (`None`: NULL).
pub fn line(fields: &[Option<&[u8]>], format: &CopyFormat) -> Vec<u8> {
    let csv = format.kind == FormatKind::Csv;
    let delimiter = format.delimiter.unwrap_or(if csv { b',' } else { b'\t' });
    let null = format.null.clone().unwrap_or_else(|| if csv { String::new() } else { "\\N".into() });
    let mut out = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        match field {
            None => out.extend_from_slice(null.as_bytes()),
            Some(value) if csv => csv_field(&mut out, value, delimiter, format, &null),
            Some(value) => {
                for &b in *value {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b if b == delimiter => out.extend_from_slice(&[b'\\', b]),
                        other => out.push(other),
                    }
                }
            }
        }
    }
    out.push(b'\n');
    out
}

/// A CSV value, quoted when it holds the delimiter, the quote, a line break
/// or the NULL marker (as PostgreSQL quotes).
fn csv_field(out: &mut Vec<u8>, value: &[u8], delimiter: u8, format: &CopyFormat, null: &str) {
    let quote = format.quote;
    let escape = format.escape.unwrap_or(quote);
    let needs = value.is_empty() && null.is_empty()
        || value == null.as_bytes()
        || value.iter().any(|&b| b == delimiter || b == quote || b == b'\n' || b == b'\r' || b == escape);
    if !needs {
        out.extend_from_slice(value);
        return;
    }
    out.push(quote);
    for &b in value {
        if b == quote || b == escape {
            out.push(escape);
        }
        out.push(b);
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_as_postgresql_writes_them() {
        let text = CopyFormat::default();
        let row: [Option<&[u8]>; 3] = [Some(b"a\tb"), None, Some(b"1")];
        assert_eq!(line(&row, &text), b"a\\tb\t\\N\t1\n");
        let csv = CopyFormat { kind: FormatKind::Csv, ..CopyFormat::default() };
        let row: [Option<&[u8]>; 4] = [Some(b"x,y"), None, Some(b""), Some(b"say \"hi\"")];
        assert_eq!(line(&row, &csv), b"\"x,y\",,\"\",\"say \"\"hi\"\"\"\n");
    }
}
