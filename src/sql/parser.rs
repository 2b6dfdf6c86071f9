//! Splits a query string into statements and parses each one.
//!
//! Our own statements (streams, continuous views, their DROPs, COPY, SET,
//! SHOW and transaction control) are recognized by their leading keywords and
//! parsed with sqlparser's primitives; everything else goes to sqlparser's
//! PostgreSQL dialect whole.

use crate::sql::statement::prepare::PrepareSql;
use datafusion::sql::sqlparser::ast::{self, SqlOption};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::statement::{
    Statement, copy::CopyFrom, create_stream::CreateStream, create_table::CreateTable, create_view::CreateView,
    drop::Drop, drop::DropKind, kafka::KafkaCall, set::SetVar, set_ttl::SetTtl, show::ShowVar,
    transaction::Transaction, truncate::TruncateView,
};
use super::{SqlError, normalize_object_name};

/// Parses one query (a view's definition, as a checkpoint saved it).
pub fn parse_query(sql: &str) -> Result<Box<ast::Query>, SqlError> {
    let mut parser =
        Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).map_err(|e| SqlError::Syntax(e.to_string()))?;
    let mut query = parser.parse_query().map_err(|e| SqlError::Syntax(e.to_string()))?;
    super::pg_syntax::rewrite(&mut query);
    Ok(query)
}

/// Parses one expression.
pub fn parse_expr(sql: &str) -> Result<ast::Expr, SqlError> {
    let mut parser =
        Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).map_err(|e| SqlError::Syntax(e.to_string()))?;
    parser.parse_expr().map_err(|e| SqlError::Syntax(e.to_string()))
}

/// Parses every statement in `sql`. An empty string gives no statements.
pub fn parse_sql(sql: &str) -> Result<Vec<Statement>, SqlError> {
    let dialect = PostgreSqlDialect {};
    let mut tokens =
        Tokenizer::new(&dialect, sql).tokenize_with_location().map_err(|e| SqlError::Syntax(e.to_string()))?;
    super::complexity::check(&tokens)?;
    if let Some(statements) = crate::pg_catalog::parse_catalog_query(sql) {
        return statements
            .into_iter()
            .map(|mut statement| {
                super::pg_syntax::rewrite(&mut statement);
                classify(statement)
            })
            .collect();
    }
    for t in &mut tokens {
        // PostgreSQL's `name := value` function arguments; sqlparser reads only `name => value` here.
        if t.token == Token::Assignment {
            t.token = Token::RArrow;
        }
    }
    quote_qualifiers(&mut tokens);
    let tokens = crate::window::rewrite::ksql_window_tokens(tokens).map_err(|e| SqlError::Syntax(e.to_string()))?;
    let tokens = super::proctime::strip_proctime(tokens);
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let mut out = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token_ref().token == Token::EOF {
            break;
        }
        out.push(parse_one(&mut parser)?);
        if !parser.consume_token(&Token::SemiColon) && parser.peek_token_ref().token != Token::EOF {
            let found = parser.peek_token();
            return Err(SqlError::Syntax(format!("expected end of statement, found: {found}")));
        }
    }
    Ok(out)
}

fn syntax(e: ParserError) -> SqlError {
    let msg = match e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
        ParserError::RecursionLimitExceeded => "statement nested too deeply".to_string(),
    };
    SqlError::Syntax(msg)
}

pub(crate) fn word_is(parser: &Parser, n: usize, word: &str) -> bool {
    matches!(&parser.peek_nth_token_ref(n).token, Token::Word(w) if w.value.eq_ignore_ascii_case(word))
}

fn parse_one(parser: &mut Parser) -> Result<Statement, SqlError> {
    if word_is(parser, 0, "create") {
        if word_is(parser, 1, "stream") {
            return parse_create_stream(parser, false);
        }
        if word_is(parser, 1, "foreign") && word_is(parser, 2, "table") {
            return parse_create_stream(parser, true);
        }
        if word_is(parser, 1, "continuous") || word_is(parser, 1, "view") || word_is(parser, 1, "materialized") {
            return parse_create_view(parser);
        }
        if word_is(parser, 1, "sink") {
            return Ok(Statement::CreateSink(super::statement::create_sink::CreateSink::parse(parser)?));
        }
    }
    if word_is(parser, 0, "drop") {
        return parse_drop(parser);
    }
    if super::statement::subscribe::Subscribe::starts(parser) {
        return Ok(Statement::Subscribe(super::statement::subscribe::Subscribe::parse(parser)?));
    }
    if word_is(parser, 0, "copy") {
        return CopyFrom::parse(parser);
    }
    if word_is(parser, 0, "set") || word_is(parser, 0, "reset") {
        return Ok(Statement::Set(SetVar::parse(parser)?));
    }
    if word_is(parser, 0, "show") && ["streams", "views", "sinks"].iter().any(|w| word_is(parser, 1, w)) {
        return parse_show_relations(parser);
    }
    if word_is(parser, 0, "show") {
        return Ok(Statement::Show(ShowVar::parse(parser)?));
    }
    if word_is(parser, 0, "checkpoint") && matches!(parser.peek_nth_token_ref(1).token, Token::EOF | Token::SemiColon) {
        parser.next_token();
        return Ok(Statement::Checkpoint);
    }
    if let Some(tx) = Transaction::parse(parser)? {
        return Ok(Statement::Transaction(tx));
    }
    if let Some(listen) = super::statement::listen::Listen::parse(parser)? {
        return Ok(Statement::Listen(listen));
    }
    if let Some(explain) = super::statement::explain_view::ExplainView::parse(parser)? {
        return Ok(Statement::ExplainView(explain));
    }
    if let Some(cursor) = super::statement::subscribe::CursorSql::parse(parser)? {
        return Ok(Statement::Cursor(cursor));
    }
    let mut stmt = parser.parse_statement().map_err(syntax)?;
    super::pg_syntax::rewrite(&mut stmt);
    classify(stmt)
}

/// `top` right before a `.` names a relation (`SELECT top.name FROM top`,
/// as SQLAlchemy writes it), not SQL Server's `SELECT TOP n`, which
/// sqlparser reads in every dialect: it becomes a plain word, as PostgreSQL
/// reads it.
fn quote_qualifiers(tokens: &mut [datafusion::sql::sqlparser::tokenizer::TokenWithSpan]) {
    for i in 1..tokens.len() {
        if tokens[i].token != Token::Period {
            continue;
        }
        if let Token::Word(w) = &mut tokens[i - 1].token
            && w.quote_style.is_none()
            && w.keyword == datafusion::sql::sqlparser::keywords::Keyword::TOP
        {
            w.keyword = datafusion::sql::sqlparser::keywords::Keyword::NoKeyword;
            w.value = w.value.to_lowercase();
        }
    }
}

/// Sorts a statement sqlparser understood into one of ours.
pub fn classify(stmt: ast::Statement) -> Result<Statement, SqlError> {
    if let Some(p) = PrepareSql::from_ast(&stmt) {
        return Ok(Statement::Prepared(p));
    }
    match stmt {
        ast::Statement::Query(ref q) => {
            if let Some(t) = TruncateView::from_query(q)? {
                return Ok(Statement::Truncate(t));
            }
            if let Some(k) = KafkaCall::from_query(q)? {
                return Ok(Statement::Kafka(k));
            }
            if let Some(t) = SetTtl::from_query(q)? {
                return Ok(Statement::SetTtl(t));
            }
            Ok(Statement::Query(Box::new(stmt)))
        }
        ast::Statement::Explain { .. } => Ok(Statement::Query(Box::new(stmt))),
        ast::Statement::Insert(_) | ast::Statement::Update(_) | ast::Statement::Delete(_) => {
            Ok(Statement::Write(Box::new(stmt)))
        }
        ast::Statement::CreateExtension(ext) => Ok(Statement::CreateExtension(ext.name.value.to_lowercase())),
        ast::Statement::Discard { object_type } => Ok(Statement::Discard(format!("DISCARD {object_type}"))),
        ast::Statement::CreateTable(ref create) if create.query.is_some() => {
            super::statement::create_table::table_as_select(create)
        }
        ast::Statement::CreateTable(ref create) => Ok(Statement::CreateTable(CreateTable::from_ast(create)?)),
        other => Err(SqlError::Unsupported(format!(
            "statement not supported: {}",
            other.to_string().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        ))),
    }
}

fn parse_create_stream(parser: &mut Parser, foreign: bool) -> Result<Statement, SqlError> {
    parser.next_token(); // CREATE
    if foreign {
        parser.next_token(); // FOREIGN
    }
    parser.next_token(); // STREAM | TABLE
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_object_name(false).map_err(syntax)?;
    if !foreign && !matches!(parser.peek_token().token, Token::LParen) {
        return parse_derived_stream(parser, &name, if_not_exists);
    }
    let (columns, watermark) = parse_stream_columns(parser)?;
    let mut server = None;
    if foreign {
        parser.expect_keyword(Keyword::SERVER).map_err(syntax)?;
        server = Some(parser.parse_identifier().map_err(syntax)?.value.to_lowercase());
        if parser.parse_keyword(Keyword::OPTIONS) {
            parser.expect_token(&Token::LParen).map_err(syntax)?;
            parser.parse_comma_separated(|p| p.parse_sql_option()).map_err(syntax)?;
            parser.expect_token(&Token::RParen).map_err(syntax)?;
        }
    }
    let mut options = parse_with_options(parser)?;
    options.extend(watermark);
    Ok(Statement::CreateStream(CreateStream {
        name: normalize_object_name(&name)?,
        if_not_exists,
        columns: columns
            .into_iter()
            .map(|c| {
                let not_null = c.options.iter().any(|o| matches!(o.option, ast::ColumnOption::NotNull));
                (c.name, c.data_type.to_string(), not_null)
            })
            .collect(),
        server,
        options,
    }))
}

/// ksqlDB's `CREATE STREAM s2 [WITH (...)] AS SELECT ... FROM s1`: a
/// derived stream, which is a transform view (PipelineDB's `action =
/// transform`).
fn parse_derived_stream(
    parser: &mut Parser,
    name: &ast::ObjectName,
    if_not_exists: bool,
) -> Result<Statement, SqlError> {
    let options = parse_with_options(parser)?;
    if !parser.parse_keyword(Keyword::AS) {
        return Err(SqlError::Syntax(format!(
            "at {}: CREATE STREAM takes its columns, CREATE STREAM s (id bigint, ...), or a query, CREATE STREAM s AS SELECT ... FROM other_stream",
            parser.peek_token()
        )));
    }
    if let Some((k, _)) = options.iter().find(|(k, _)| k == "action") {
        return Err(SqlError::Unsupported(format!("option \"{k}\" is not taken by CREATE STREAM ... AS SELECT")));
    }
    let (mut options, sink) = super::statement::create_view::split_sink_options(options);
    if sink.iter().any(|(k, _)| k != "kafka_topic") && !sink.iter().any(|(k, _)| k == "kafka_topic") {
        return Err(SqlError::InvalidParameter(
            "Kafka options need kafka_topic: CREATE STREAM s2 WITH (kafka_topic = '...') AS SELECT ...".into(),
        ));
    }
    options.push(("action".into(), "transform".into()));
    let mut query = parser.parse_query().map_err(syntax)?;
    super::pg_syntax::rewrite(&mut query);
    Ok(Statement::CreateView(CreateView {
        name: normalize_object_name(name)?,
        if_not_exists,
        options,
        query,
        tag: "CREATE STREAM",
        sink,
    }))
}

/// A stream's `(column type, ...)`, which may also hold Flink's and
/// RisingWave's `WATERMARK FOR ts AS ts - INTERVAL '10 seconds'`; that
/// comes back as the `timestamp` and `lateness` options.
fn parse_stream_columns(parser: &mut Parser) -> Result<(Vec<ast::ColumnDef>, WithOptions), SqlError> {
    parser.expect_token(&Token::LParen).map_err(syntax)?;
    let mut columns = Vec::new();
    let mut watermark = Vec::new();
    if parser.consume_token(&Token::RParen) {
        return Ok((columns, watermark));
    }
    loop {
        if word_is(parser, 0, "watermark") && word_is(parser, 1, "for") {
            parser.next_token();
            parser.next_token();
            let column = parser.parse_identifier().map_err(syntax)?;
            parser.expect_keyword(Keyword::AS).map_err(syntax)?;
            let expr = parser.parse_expr().map_err(syntax)?;
            watermark.push(("timestamp".to_string(), super::normalize_ident(&column)));
            watermark.push(("lateness".to_string(), watermark_lateness(&column, &expr)?));
        } else {
            columns.push(parser.parse_column_def().map_err(syntax)?);
        }
        if parser.consume_token(&Token::RParen) {
            return Ok((columns, watermark));
        }
        parser.expect_token(&Token::Comma).map_err(syntax)?;
    }
}

/// The lateness in `WATERMARK FOR ts AS ts - INTERVAL '...'` (or `AS ts`: none).
fn watermark_lateness(column: &ast::Ident, expr: &ast::Expr) -> Result<String, SqlError> {
    let bad = || {
        SqlError::Syntax(format!("WATERMARK FOR {column} AS ... must be {column} or {column} - INTERVAL '10 seconds'"))
    };
    let same = |e: &ast::Expr| matches!(e, ast::Expr::Identifier(id) if id.value.eq_ignore_ascii_case(&column.value));
    match expr {
        e if same(e) => Ok("0".into()),
        ast::Expr::BinaryOp { left, op: ast::BinaryOperator::Minus, right } if same(left) => match right.as_ref() {
            ast::Expr::Interval(i) => {
                let value = match i.value.as_ref() {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) | ast::Value::Number(s, _) => s.clone(),
                        _ => return Err(bad()),
                    },
                    _ => return Err(bad()),
                };
                Ok(match &i.leading_field {
                    Some(field) => format!("{value} {field}"),
                    None => value,
                })
            }
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn parse_create_view(parser: &mut Parser) -> Result<Statement, SqlError> {
    parser.next_token(); // CREATE
    let continuous = word_is(parser, 0, "continuous");
    if continuous || word_is(parser, 0, "materialized") {
        parser.next_token();
    }
    parser.expect_keyword(Keyword::VIEW).map_err(syntax)?;
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_object_name(false).map_err(syntax)?;
    let options = parse_with_options(parser)?;
    parser.expect_keyword(Keyword::AS).map_err(syntax)?;
    let mut query = parser.parse_query().map_err(syntax)?;
    super::pg_syntax::rewrite(&mut query);
    Ok(Statement::CreateView(CreateView {
        name: normalize_object_name(&name)?,
        if_not_exists,
        options,
        query,
        tag: "CREATE VIEW",
        sink: Vec::new(),
    }))
}

/// `WITH (...)` options: lower-case keys and unquoted values.
type WithOptions = Vec<(String, String)>;

/// `WITH (key = value, ...)`, as lower-case keys and unquoted values.
pub(crate) fn parse_with_options(parser: &mut Parser) -> Result<Vec<(String, String)>, SqlError> {
    if !parser.parse_keyword(Keyword::WITH) {
        return Ok(Vec::new());
    }
    parser.expect_token(&Token::LParen).map_err(syntax)?;
    let options = parser.parse_comma_separated(|p| p.parse_sql_option()).map_err(syntax)?;
    parser.expect_token(&Token::RParen).map_err(syntax)?;
    option_pairs(options)
}

/// `key = value` options, as lower-case keys and unquoted values.
pub fn option_pairs(options: Vec<SqlOption>) -> Result<WithOptions, SqlError> {
    options
        .into_iter()
        .map(|o| match o {
            SqlOption::KeyValue { key, value } => {
                let v = value.to_string();
                let v = v.trim_matches('\'').to_string();
                Ok((key.value.to_lowercase(), v))
            }
            other => Err(SqlError::Syntax(format!("expected key = value in WITH, found {other}"))),
        })
        .collect()
}

/// ksqlDB's `SHOW STREAMS`, `SHOW VIEWS` and `SHOW SINKS`: queries of the `pipelinedb` relations.
fn parse_show_relations(parser: &mut Parser) -> Result<Statement, SqlError> {
    parser.next_token(); // SHOW
    let what = parser.next_token().to_string().to_lowercase();
    let sql = match what.as_str() {
        "streams" => "SELECT name, columns, views, rows_in FROM pipelinedb.streams ORDER BY name",
        "sinks" => {
            "SELECT name, relation, topic, envelope, status, messages, lag, last_error FROM pipelinedb.sinks ORDER BY name"
        }
        _ => "SELECT name, stream, rows_in, groups, bytes, query FROM pipelinedb.views ORDER BY name",
    };
    let stmt = Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).and_then(|mut p| p.parse_statement());
    Ok(Statement::Query(Box::new(stmt.map_err(syntax)?)))
}

fn parse_drop(parser: &mut Parser) -> Result<Statement, SqlError> {
    parser.next_token(); // DROP
    let kind = if word_is(parser, 0, "stream") {
        parser.next_token();
        DropKind::Stream
    } else if word_is(parser, 0, "foreign") && word_is(parser, 1, "table") {
        parser.next_token();
        parser.next_token();
        DropKind::ForeignTable
    } else if (word_is(parser, 0, "continuous") || word_is(parser, 0, "materialized")) && word_is(parser, 1, "view") {
        parser.next_token();
        parser.next_token();
        DropKind::View
    } else if word_is(parser, 0, "view") {
        parser.next_token();
        DropKind::View
    } else if word_is(parser, 0, "table") {
        parser.next_token();
        DropKind::Table
    } else if word_is(parser, 0, "sink") {
        parser.next_token();
        DropKind::Sink
    } else {
        let found = parser.peek_token();
        return Err(SqlError::Unsupported(format!(
            "DROP {found} is not supported; use DROP STREAM, DROP FOREIGN TABLE, DROP VIEW, DROP TABLE or DROP SINK"
        )));
    };
    let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let names = parser.parse_comma_separated(|p| p.parse_object_name(false)).map_err(syntax)?;
    let cascade = parser.parse_keyword(Keyword::CASCADE);
    if !cascade {
        let _ = parser.parse_keyword(Keyword::RESTRICT);
    }
    let names = names.iter().map(normalize_object_name).collect::<Result<Vec<_>, _>>()?;
    Ok(Statement::Drop(Drop { kind, if_exists, names, cascade }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_recognizes_ours() {
        let stmts = parse_sql(
            "CREATE STREAM s (k int, v float8); CREATE CONTINUOUS VIEW v AS SELECT k, count(*) FROM s GROUP BY k;\
             SELECT * FROM v; ; DROP STREAM s CASCADE",
        )
        .unwrap();
        assert_eq!(stmts.len(), 4);
        assert!(matches!(stmts[0], Statement::CreateStream(_)));
        assert!(matches!(stmts[1], Statement::CreateView(_)));
        assert!(matches!(stmts[2], Statement::Query(_)));
        assert!(matches!(&stmts[3], Statement::Drop(d) if d.cascade && d.kind == DropKind::Stream));
    }

    #[test]
    fn foreign_table_and_view_with_options() {
        let stmts = parse_sql(
            "CREATE FOREIGN TABLE s (x int) SERVER pipelinedb; CREATE VIEW v WITH (action=materialize) AS SELECT count(*) FROM s",
        )
        .unwrap();
        let Statement::CreateStream(s) = &stmts[0] else { panic!("not a stream") };
        assert_eq!(s.server.as_deref(), Some("pipelinedb"));
        let Statement::CreateView(v) = &stmts[1] else { panic!("not a view") };
        assert_eq!(v.options, vec![("action".to_string(), "materialize".to_string())]);
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(parse_sql("SELEC 1"), Err(SqlError::Unsupported(_)) | Err(SqlError::Syntax(_))));
        assert!(matches!(parse_sql("CREATE STREAM (x int)"), Err(SqlError::Syntax(_))));
    }
}
