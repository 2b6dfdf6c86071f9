//! `COPY stream [(cols)] FROM STDIN [WITH (FORMAT text|csv|binary, ...)]`; the
//! options are shared with `COPY ... TO STDOUT` (`super::copy_to`).
//!
//! Executing the statement only checks names and options; the rows arrive in
//! the COPY sub-protocol and are decoded by `crate::ingest::copy`.

use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement as Ast,
};
use datafusion::sql::sqlparser::parser::Parser;

use super::{Reply, Statement};
use crate::catalog::CatalogError;
use crate::error::Result;
use crate::ingest::decode::{CopyFormat, FormatKind};
use crate::server::Session;
use crate::sql::{SqlError, normalize_ident, normalize_object_name};

/// A COPY into a stream.
#[derive(Debug, Clone)]
pub struct CopyFrom {
    /// The stream written.
    pub stream: String,
    /// The columns the data holds, in order; empty means all user columns.
    pub columns: Vec<String>,
    /// How rows are written.
    pub format: CopyFormat,
}

impl CopyFrom {
    /// Parses a COPY statement; the parser is at COPY.
    pub fn parse(parser: &mut Parser) -> Result<Statement, SqlError> {
        parser.next_token(); // COPY
        let stmt = parser.parse_copy().map_err(|e| SqlError::Syntax(e.to_string()))?;
        let Ast::Copy { source, to, target, options, legacy_options, values } = stmt else {
            return Err(SqlError::Syntax("expected COPY".into()));
        };
        if to && !matches!(target, CopyTarget::Stdout) {
            return Err(SqlError::Unsupported(
                "COPY ... TO a file is not supported: the server writes no files; use COPY ... TO STDOUT (psql's \\copy ... to)".into(),
            ));
        }
        if !to && !matches!(target, CopyTarget::Stdin) {
            return Err(SqlError::Unsupported(
                "COPY ... FROM a file is not supported: the server reads no files; use COPY ... FROM STDIN (psql's \\copy)".into(),
            ));
        }
        if !values.is_empty() {
            return Err(SqlError::Unsupported(
                "inline COPY data is not supported; send it with the COPY protocol".into(),
            ));
        }
        let mut format = CopyFormat::default();
        for opt in options {
            apply_option(&mut format, opt)?;
        }
        for opt in legacy_options {
            apply_legacy_option(&mut format, opt)?;
        }
        check_binary(&format)?;
        if to {
            return super::copy_to::CopyTo::statement(source, format);
        }
        let CopySource::Table { table_name, columns } = source else {
            return Err(SqlError::Unsupported("COPY (query) FROM STDIN is not valid; copy a query TO STDOUT".into()));
        };
        Ok(Statement::Copy(CopyFrom {
            stream: normalize_object_name(&table_name)?,
            columns: columns.iter().map(normalize_ident).collect(),
            format,
        }))
    }

    /// Checks the stream and columns, then asks the client for the data.
    pub async fn execute(mut self, session: &Session) -> Result<Reply> {
        let target = crate::ingest::copy::CopyTarget::find(&session.engine().catalog, &self.stream)?;
        let schema = target.schema();
        if self.columns.is_empty() {
            self.columns = target.user_columns().iter().map(|f| f.name().clone()).collect();
        }
        for c in &self.columns {
            if schema.index_of(c).is_err() {
                return Err(CatalogError::UndefinedColumn { relation: self.stream.clone(), column: c.clone() }.into());
            }
        }
        Ok(Reply::CopyIn(self))
    }
}

fn single_byte(c: char, what: &str) -> Result<u8, SqlError> {
    u8::try_from(c)
        .ok()
        .filter(u8::is_ascii)
        .ok_or_else(|| SqlError::InvalidParameter(format!("COPY {what} must be a single one-byte character")))
}

/// The binary format takes none of the text formats' options, as in
/// PostgreSQL.
fn check_binary(format: &CopyFormat) -> Result<(), SqlError> {
    if format.kind != FormatKind::Binary {
        return Ok(());
    }
    let option = match format {
        f if f.delimiter.is_some() => "DELIMITER",
        f if f.null.is_some() => "NULL",
        f if f.header => "HEADER",
        f if f.escape.is_some() => "ESCAPE",
        _ => return Ok(()),
    };
    Err(SqlError::Syntax(format!("cannot specify {option} in BINARY mode")))
}

fn apply_option(format: &mut CopyFormat, opt: CopyOption) -> Result<(), SqlError> {
    match opt {
        CopyOption::Format(name) => {
            format.kind = match name.value.to_lowercase().as_str() {
                "text" => FormatKind::Text,
                "csv" => FormatKind::Csv,
                "binary" => FormatKind::Binary,
                other => {
                    return Err(SqlError::Unsupported(format!(
                        "COPY format \"{other}\" is not supported; use text, csv or binary"
                    )));
                }
            };
            format.apply_kind_defaults();
        }
        CopyOption::Delimiter(c) => format.delimiter = Some(single_byte(c, "delimiter")?),
        CopyOption::Null(s) => format.null = Some(s),
        CopyOption::Header(h) => format.header = h,
        CopyOption::Quote(c) => format.quote = single_byte(c, "quote")?,
        CopyOption::Escape(c) => format.escape = Some(single_byte(c, "escape")?),
        CopyOption::Encoding(e) if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
        other => {
            return Err(SqlError::Unsupported(format!("COPY option {other} is not supported")));
        }
    }
    Ok(())
}

fn apply_legacy_option(format: &mut CopyFormat, opt: CopyLegacyOption) -> Result<(), SqlError> {
    match opt {
        CopyLegacyOption::Delimiter(c) => format.delimiter = Some(single_byte(c, "delimiter")?),
        CopyLegacyOption::Null(s) => format.null = Some(s),
        CopyLegacyOption::Binary => format.kind = FormatKind::Binary,
        CopyLegacyOption::Csv(csv_options) => {
            format.kind = FormatKind::Csv;
            format.apply_kind_defaults();
            for o in csv_options {
                match o {
                    CopyLegacyCsvOption::Header => format.header = true,
                    CopyLegacyCsvOption::Quote(c) => format.quote = single_byte(c, "quote")?,
                    CopyLegacyCsvOption::Escape(c) => format.escape = Some(single_byte(c, "escape")?),
                    other => {
                        return Err(SqlError::Unsupported(format!("COPY option {other} is not supported")));
                    }
                }
            }
        }
        other => {
            return Err(SqlError::Unsupported(format!("COPY option {other} is not supported")));
        }
    }
    Ok(())
}
