//! `SUBSCRIBE [TO] view [WITH (snapshot = true|false)]`,
//! `COPY (SUBSCRIBE ...) TO STDOUT`, and cursors: `DECLARE c CURSOR FOR
//! SUBSCRIBE ... | query`, `FETCH [n | ALL] [FROM] c [WITH (timeout = '1s')]`
//! and `CLOSE c | ALL`.
//!
//! A SUBSCRIBE streams until the client cancels it; the wire layer sends
//! its epochs (`crate::pgwire::subscribe`). A cursor on a subscription is
//! for drivers that cannot read an endless result, such as PDO: each FETCH
//! returns the rows that have arrived, waiting up to its timeout for the
//! first. A cursor on a query holds the query's rows, read when declared.

use std::collections::VecDeque;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::Reply;
use crate::error::Result;
use crate::push::{PushError, Subscription};
use crate::server::Session;
use crate::sql::{SqlError, normalize_ident, normalize_object_name};

fn syntax(e: ParserError) -> SqlError {
    SqlError::Syntax(e.to_string())
}

fn word_is(parser: &Parser, n: usize, word: &str) -> bool {
    matches!(&parser.peek_nth_token_ref(n).token, Token::Word(w) if w.value.eq_ignore_ascii_case(word))
}

/// A SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The view subscribed to.
    pub relation: String,
    /// Whether the first epoch holds the view's contents.
    pub snapshot: bool,
    /// Sent as `COPY ... TO STDOUT` rather than as rows.
    pub copy: bool,
}

impl Subscribe {
    /// Whether the statement at the parser is a SUBSCRIBE, or a
    /// `COPY (SUBSCRIBE ...)`.
    pub fn starts(parser: &Parser) -> bool {
        word_is(parser, 0, "subscribe")
            || (word_is(parser, 0, "copy")
                && parser.peek_nth_token_ref(1).token == Token::LParen
                && word_is(parser, 2, "subscribe"))
    }

    /// Parses `SUBSCRIBE [TO] name [WITH (snapshot = ...)]`, or the same in
    /// `COPY (...) TO STDOUT`.
    pub fn parse(parser: &mut Parser) -> Result<Self, SqlError> {
        let copy = word_is(parser, 0, "copy");
        if copy {
            parser.next_token(); // COPY
            parser.next_token(); // (
        }
        parser.next_token(); // SUBSCRIBE
        if parser.peek_token_ref().token == Token::LParen {
            return Err(SqlError::Unsupported(
                "SUBSCRIBE to a query is not supported; create a continuous view of it and SUBSCRIBE to the view"
                    .into(),
            ));
        }
        let _ = parser.parse_keyword(Keyword::TO);
        let relation = normalize_object_name(&parser.parse_object_name(false).map_err(syntax)?)?;
        let mut snapshot = true;
        for (key, value) in crate::sql::parser::parse_with_options(parser)? {
            match key.as_str() {
                "snapshot" => snapshot = boolean(&key, &value)?,
                other => {
                    return Err(SqlError::InvalidParameter(format!(
                        "SUBSCRIBE option \"{other}\" is not supported; it takes snapshot = true | false"
                    )));
                }
            }
        }
        if copy {
            parser.expect_token(&Token::RParen).map_err(syntax)?;
            parser.expect_keyword(Keyword::TO).map_err(syntax)?;
            if !parser.parse_keyword(Keyword::STDOUT) {
                return Err(SqlError::Unsupported("COPY (SUBSCRIBE ...) only writes TO STDOUT".into()));
            }
        }
        Ok(Self { relation, snapshot, copy })
    }

    /// Subscribes to the view, table or stream: its changes from now on,
    /// after its contents if `snapshot` (a stream has none).
    pub async fn open(&self, session: &Session) -> Result<Subscription> {
        let catalog = &session.engine().catalog;
        let epoch = catalog.durability().last_epoch();
        match catalog.relation(&self.relation) {
            Some(relation) => relation.subscribe(self.snapshot, epoch).await,
            None => Err(crate::catalog::CatalogError::UndefinedRelation(self.relation.clone()).into()),
        }
    }
}

fn boolean(key: &str, value: &str) -> Result<bool, SqlError> {
    match value.to_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(SqlError::InvalidParameter(format!("{key} must be true or false, not '{value}'"))),
    }
}

/// What a cursor reads.
#[derive(Debug, Clone)]
pub enum CursorSource {
    /// A subscription's epochs.
    Subscribe(Subscribe),
    /// A query's rows.
    Query(Box<ast::Statement>),
}

/// DECLARE, FETCH and CLOSE.
#[derive(Debug, Clone)]
pub enum CursorSql {
    /// `DECLARE name CURSOR FOR ...`.
    Declare {
        /// The cursor's name.
        name: String,
        /// What it reads.
        source: CursorSource,
    },
    /// `FETCH [n | ALL] [FROM] name [WITH (timeout = ...)]`.
    Fetch {
        /// The cursor's name.
        name: String,
        /// How many rows at most (`None`: all that are there).
        count: Option<usize>,
        /// How long to wait for a subscription's first row (`None`: until one comes).
        timeout: Option<Duration>,
    },
    /// `CLOSE name`, or `CLOSE ALL` (`None`).
    Close(Option<String>),
}

/// An open cursor.
#[derive(Debug)]
pub enum Cursor {
    /// On a subscription: rows arrive as the view changes. `pending` holds
    /// what a FETCH took from an epoch and did not return.
    Subscription {
        /// The subscription.
        subscription: Subscription,
        /// Rows received and not yet fetched.
        pending: VecDeque<RecordBatch>,
    },
    /// On a query: its rows, read when it was declared.
    Rows {
        /// The columns.
        schema: SchemaRef,
        /// The rows not yet fetched.
        pending: VecDeque<RecordBatch>,
    },
}

impl CursorSql {
    /// Recognizes DECLARE, FETCH and CLOSE; other statements give `None`
    /// and consume nothing.
    pub fn parse(parser: &mut Parser) -> Result<Option<Self>, SqlError> {
        if word_is(parser, 0, "declare") {
            return Self::parse_declare(parser).map(Some);
        }
        if word_is(parser, 0, "fetch") {
            return Self::parse_fetch(parser).map(Some);
        }
        if word_is(parser, 0, "close") {
            parser.next_token();
            if parser.parse_keyword(Keyword::ALL) {
                return Ok(Some(CursorSql::Close(None)));
            }
            return Ok(Some(CursorSql::Close(Some(normalize_ident(&parser.parse_identifier().map_err(syntax)?)))));
        }
        Ok(None)
    }

    fn parse_declare(parser: &mut Parser) -> Result<Self, SqlError> {
        parser.next_token(); // DECLARE
        let name = normalize_ident(&parser.parse_identifier().map_err(syntax)?);
        // [BINARY] [ASENSITIVE | INSENSITIVE] [[NO] SCROLL] CURSOR [{WITH | WITHOUT} HOLD] FOR
        while !parser.parse_keyword(Keyword::CURSOR) {
            let token = parser.next_token();
            match &token.token {
                Token::Word(w)
                    if ["asensitive", "insensitive", "no", "scroll"].contains(&w.value.to_lowercase().as_str()) => {}
                Token::Word(w) if w.value.eq_ignore_ascii_case("binary") => {
                    return Err(SqlError::Unsupported(
                        "binary cursors are not supported; declare a text cursor".into(),
                    ));
                }
                _ => return Err(SqlError::Syntax(format!("expected CURSOR, found: {token}"))),
            }
        }
        if parser.parse_keyword(Keyword::WITH) || parser.parse_keyword(Keyword::WITHOUT) {
            parser.expect_keyword(Keyword::HOLD).map_err(syntax)?;
        }
        parser.expect_keyword(Keyword::FOR).map_err(syntax)?;
        let source = match Subscribe::starts(parser) {
            true => CursorSource::Subscribe(Subscribe::parse(parser)?),
            false => CursorSource::Query(Box::new(ast::Statement::Query(parser.parse_query().map_err(syntax)?))),
        };
        Ok(CursorSql::Declare { name, source })
    }

    fn parse_fetch(parser: &mut Parser) -> Result<Self, SqlError> {
        parser.next_token(); // FETCH
        let _ = parser.parse_keyword(Keyword::FORWARD);
        let count = if parser.parse_keyword(Keyword::ALL) {
            None
        } else if parser.parse_keyword(Keyword::NEXT) {
            Some(1)
        } else if let Token::Number(n, _) = &parser.peek_token_ref().token {
            let n = n
                .parse::<usize>()
                .map_err(|_| SqlError::Syntax(format!("FETCH count must be a whole number, not {n}")))?;
            parser.next_token();
            Some(n)
        } else {
            Some(1)
        };
        let _ = parser.parse_keyword(Keyword::FROM) || parser.parse_keyword(Keyword::IN);
        let name = normalize_ident(&parser.parse_identifier().map_err(syntax)?);
        let mut timeout = None;
        for (key, value) in crate::sql::parser::parse_with_options(parser)? {
            match key.as_str() {
                "timeout" => match crate::server::cancel::parse_timeout(&value) {
                    Some(t) => timeout = Some(t.unwrap_or(Duration::ZERO)),
                    None => {
                        return Err(SqlError::InvalidParameter(format!(
                            "FETCH timeout '{value}' is not a duration; write it as, for example, '1s' or '500ms'"
                        )));
                    }
                },
                other => {
                    return Err(SqlError::InvalidParameter(format!(
                        "FETCH option \"{other}\" is not supported; it takes timeout"
                    )));
                }
            }
        }
        Ok(CursorSql::Fetch { name, count, timeout })
    }

    /// Applies the statement for `session`; `params` are the values of a
    /// prepared `DECLARE`'s `$n` (psycopg 3's named cursors bind them).
    pub async fn execute(self, session: &Session, params: Option<ParamValues>) -> Result<Reply> {
        match self {
            CursorSql::Declare { name, source } => {
                if session.cursors.lock().contains_key(&name) {
                    return Err(PushError::DuplicateCursor(name).into());
                }
                let cursor = match source {
                    CursorSource::Subscribe(s) => {
                        Cursor::Subscription { subscription: s.open(session).await?, pending: VecDeque::new() }
                    }
                    CursorSource::Query(q) => match super::query::execute(*q, session, params).await? {
                        Reply::Rows { schema, batches } => Cursor::Rows { schema, pending: batches.into() },
                        _ => {
                            return Err(SqlError::Unsupported("a cursor needs a query that returns rows".into()).into());
                        }
                    },
                };
                session.cursors.lock().insert(name, cursor);
                Ok(Reply::Tag("DECLARE CURSOR".into()))
            }
            CursorSql::Fetch { name, count, timeout } => fetch(session, &name, count, timeout).await,
            CursorSql::Close(name) => {
                let mut cursors = session.cursors.lock();
                match name {
                    None => cursors.clear(),
                    Some(n) if cursors.remove(&n).is_none() => return Err(PushError::UnknownCursor(n).into()),
                    Some(_) => {}
                }
                Ok(Reply::Tag("CLOSE CURSOR".into()))
            }
        }
    }

    /// The query a `DECLARE` reads, if it is one (not a SUBSCRIBE).
    pub fn declared_query(&self) -> Option<&ast::Statement> {
        match self {
            CursorSql::Declare { source: CursorSource::Query(q), .. } => Some(q),
            _ => None,
        }
    }

    /// The columns a FETCH of this cursor returns, when it is known without
    /// running anything (for Describe).
    pub fn schema(&self, session: &Session) -> Option<SchemaRef> {
        let CursorSql::Fetch { name, .. } = self else {
            return None;
        };
        cursor_schema(session, name)
    }
}

/// The columns of open cursor `name`, if there is one (psycopg 3 describes
/// a named cursor as a protocol portal of that name, as PostgreSQL allows).
pub fn cursor_schema(session: &Session, name: &str) -> Option<SchemaRef> {
    match session.cursors.lock().get(name)? {
        Cursor::Subscription { subscription, .. } => Some(subscription.schema()),
        Cursor::Rows { schema, .. } => Some(schema.clone()),
    }
}

/// `FETCH`: up to `count` rows of cursor `name`. On a subscription, waits
/// up to `timeout` for the first rows when none has arrived.
async fn fetch(session: &Session, name: &str, count: Option<usize>, timeout: Option<Duration>) -> Result<Reply> {
    // The cursor leaves the session while this FETCH waits, so no lock is
    // held across the wait; it goes back whatever happens, a cancel too.
    let Some(cursor) = session.cursors.lock().remove(name) else {
        return Err(PushError::UnknownCursor(name.to_string()).into());
    };
    let mut borrowed = Borrowed { session, name, cursor: Some(cursor) };
    let Some(cursor) = borrowed.cursor.as_mut() else {
        return Err(PushError::Internal("a borrowed cursor went missing".into()).into());
    };
    let (schema, batches) = fetch_from(cursor, count, timeout).await?;
    Ok(Reply::Fetched { schema, batches })
}

/// A cursor taken out of its session, put back when dropped.
struct Borrowed<'a> {
    session: &'a Session,
    name: &'a str,
    cursor: Option<Cursor>,
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        if let Some(cursor) = self.cursor.take() {
            self.session.cursors.lock().insert(self.name.to_string(), cursor);
        }
    }
}

async fn fetch_from(
    cursor: &mut Cursor,
    count: Option<usize>,
    timeout: Option<Duration>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let limit = count.unwrap_or(usize::MAX);
    match cursor {
        Cursor::Rows { schema, pending } => Ok((schema.clone(), take_rows(pending, limit))),
        Cursor::Subscription { subscription, pending } => {
            if pending.is_empty() && limit > 0 {
                let first = match timeout {
                    None => Some(subscription.next().await),
                    Some(t) => tokio::time::timeout(t, subscription.next()).await.ok(),
                };
                if let Some(first) = first {
                    pending.push_back(first?);
                }
            }
            while pending.iter().map(RecordBatch::num_rows).sum::<usize>() < limit {
                match subscription.try_next() {
                    Some(next) => pending.push_back(next?),
                    None => break,
                }
            }
            Ok((subscription.schema(), take_rows(pending, limit)))
        }
    }
}

/// Takes up to `limit` rows off the front of `pending`.
fn take_rows(pending: &mut VecDeque<RecordBatch>, limit: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut left = limit;
    while left > 0 {
        let Some(batch) = pending.pop_front() else { break };
        if batch.num_rows() <= left {
            left -= batch.num_rows();
            out.push(batch);
        } else {
            out.push(batch.slice(0, left));
            pending.push_front(batch.slice(left, batch.num_rows() - left));
            left = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    fn parser(sql: &str) -> Parser<'static> {
        Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).unwrap()
    }

    #[test]
    fn parses_subscribe_in_its_three_forms() {
        let plain = Subscribe::parse(&mut parser("SUBSCRIBE TO Totals")).unwrap();
        assert_eq!(plain, Subscribe { relation: "totals".into(), snapshot: true, copy: false });
        let copy = Subscribe::parse(&mut parser("COPY (SUBSCRIBE totals WITH (snapshot = false)) TO STDOUT")).unwrap();
        assert_eq!(copy, Subscribe { relation: "totals".into(), snapshot: false, copy: true });
        assert!(Subscribe::parse(&mut parser("SUBSCRIBE (SELECT 1)")).is_err());
        assert!(Subscribe::parse(&mut parser("SUBSCRIBE t WITH (colour = 'red')")).is_err());
    }

    #[test]
    fn parses_cursors() {
        let declare = CursorSql::parse(&mut parser("DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SUBSCRIBE v")).unwrap();
        assert!(matches!(declare, Some(CursorSql::Declare { source: CursorSource::Subscribe(_), .. })));
        let query = CursorSql::parse(&mut parser("DECLARE \"C\" CURSOR FOR SELECT 1")).unwrap();
        assert!(matches!(query, Some(CursorSql::Declare { ref name, source: CursorSource::Query(_) }) if name == "C"));
        let fetch = CursorSql::parse(&mut parser("FETCH 10 c WITH (timeout = '1s')")).unwrap();
        assert!(
            matches!(fetch, Some(CursorSql::Fetch { count: Some(10), timeout: Some(t), .. }) if t == Duration::from_secs(1))
        );
        let all = CursorSql::parse(&mut parser("FETCH FORWARD ALL FROM c")).unwrap();
        assert!(matches!(all, Some(CursorSql::Fetch { count: None, timeout: None, .. })));
        assert!(matches!(CursorSql::parse(&mut parser("CLOSE ALL")).unwrap(), Some(CursorSql::Close(None))));
        assert!(CursorSql::parse(&mut parser("SELECT 1")).unwrap().is_none());
    }

    #[test]
    fn takes_rows_across_batches() {
        let batch = |n: i64| {
            let schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
                datafusion::arrow::datatypes::Field::new("v", datafusion::arrow::datatypes::DataType::Int64, false),
            ]));
            RecordBatch::try_new(
                schema,
                vec![std::sync::Arc::new(datafusion::arrow::array::Int64Array::from(vec![n; 3]))],
            )
            .unwrap()
        };
        let mut pending: VecDeque<RecordBatch> = vec![batch(1), batch(2)].into();
        let rows = |b: &[RecordBatch]| b.iter().map(RecordBatch::num_rows).sum::<usize>();
        assert_eq!(rows(&take_rows(&mut pending, 4)), 4);
        assert_eq!(rows(&take_rows(&mut pending, 10)), 2);
        assert!(pending.is_empty());
    }
}
