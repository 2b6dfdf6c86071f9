//! The protocol handlers: simple query, extended query (Parse, Bind,
//! Describe, Execute) and COPY, all over one [`Session`].

use crate::sql::statement::prepare::PrepareSql;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{Sink, stream};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{CopyResponse, DescribePortalResponse, DescribeStatementResponse, FieldInfo, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::response::TransactionStatus;

use super::encode;
use super::params::{bind, ordered_types, pg_type};
use super::sqlstate::{IN_FAILED_TRANSACTION, to_pgwire};
use super::streamed::Watched;
use crate::error::{EddyError, Result};
use crate::ingest::IngestError;
use crate::ingest::copy::CopyIn;
use crate::server::Session;
use crate::sql::statement::returning::{Returning, returning_items};
use crate::sql::statement::transaction::Transaction;
use crate::sql::statement::truncate::TruncateView;
use crate::sql::statement::{Reply, Statement};
use crate::sql::{SqlError, parse_sql};

/// A statement prepared by Parse: parsed, and planned when DataFusion runs it.
#[derive(Debug, Clone)]
pub struct Prepared {
    statement: Statement,
    plan: Option<LogicalPlan>,
    param_types: Vec<DataType>,
    /// The parameters' PostgreSQL types: those of `param_types`, or the
    /// type a cast names when it has no Arrow type of its own (`oid[]`).
    pg_param_types: Vec<Type>,
    result: Option<SchemaRef>,
}

/// All handlers of one connection.
#[derive(Debug)]
pub struct EddyHandler {
    session: Arc<Session>,
    parser: Arc<EddyQueryParser>,
}

impl EddyHandler {
    /// Handlers for `session`.
    pub fn new(session: Arc<Session>) -> Self {
        let parser = Arc::new(EddyQueryParser { session: session.clone() });
        Self { session, parser }
    }

    /// Looks at a frontend message before pgwire handles it: notes what it
    /// does to the statements Parse prepared (pgwire keeps them; the
    /// session keeps their names), and lets a `ROLLBACK TO SAVEPOINT` leave
    /// a failed transaction block usable again, as in PostgreSQL (pgwire
    /// reads the status before the statement runs, and has no way back from
    /// a failed block short of its end).
    pub fn before<C>(&self, client: &mut C, message: &pgwire::messages::PgWireFrontendMessage)
    where
        C: ClientInfo + ClientPortalStore,
        C::PortalStore: PortalStore<Statement = Prepared>,
    {
        use pgwire::messages::PgWireFrontendMessage as M;
        let rolls_back_to =
            |statement: &Statement| matches!(statement, Statement::Transaction(Transaction::RollbackTo(_)));
        let failed = client.transaction_status() == TransactionStatus::Error;
        match message {
            M::Parse(parse) => self.session.note_parsed(parse.name.as_deref().unwrap_or("")),
            M::Close(close) if close.target_type == pgwire::messages::extendedquery::TARGET_TYPE_BYTE_STATEMENT => {
                self.session.forget_parsed(close.name.as_deref().unwrap_or(""));
            }
            M::Query(query)
                if failed && parse_sql(&query.query).is_ok_and(|s| s.first().is_some_and(rolls_back_to)) =>
            {
                client.set_transaction_status(TransactionStatus::Transaction);
            }
            M::Execute(execute) if failed => {
                let portal =
                    client.portal_store().get_portal(execute.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME));
                if portal
                    .and_then(|p| p.value().cloned())
                    .is_some_and(|p| rolls_back_to(&p.statement.statement.statement))
                {
                    client.set_transaction_status(TransactionStatus::Transaction);
                }
            }
            _ => {}
        }
    }

    /// `DEALLOCATE` and `DISCARD ALL` reach the statements Parse messages
    /// prepared too: PostgreSQL keeps both kinds in one namespace, and
    /// pdo_pgsql frees its statements with `DEALLOCATE`. Answers the
    /// `DEALLOCATE` of one such statement; otherwise frees them as asked
    /// and lets the statement run on (for those `PREPARE` made).
    fn deallocate_parsed<C>(&self, client: &C, statement: &Statement) -> Option<Response>
    where
        C: ClientPortalStore,
        C::PortalStore: PortalStore,
    {
        let store = client.portal_store();
        match statement {
            Statement::Prepared(PrepareSql::Deallocate(Some(name))) => {
                store.get_statement(name)?;
                store.rm_statement(name);
                self.session.forget_parsed(name);
                Some(Response::Execution(Tag::new("DEALLOCATE")))
            }
            Statement::Prepared(PrepareSql::Deallocate(None)) => {
                self.session.take_parsed().iter().for_each(|name| store.rm_statement(name));
                None
            }
            Statement::Discard(tag) if tag == "DISCARD ALL" => {
                self.session.take_parsed().iter().for_each(|name| store.rm_statement(name));
                None
            }
            _ => None,
        }
    }

    async fn execute(&self, statement: Statement, format: &Format) -> Result<Response> {
        self.execute_with(statement, None, format).await
    }

    /// [`Self::execute`] with a prepared statement's parameter values.
    async fn execute_with(
        &self,
        statement: Statement,
        params: Option<ParamValues>,
        format: &Format,
    ) -> Result<Response> {
        let watched = Watched::new(self.session.arm(), self.session.busy(), statement.kind());
        let reply = watched.stop().run(statement.execute(&self.session, params)).await?;
        self.respond(reply, format, watched)
    }

    /// The response for `reply`. `watched` counts the statement's latency
    /// once it is dropped: here, or after the last row of a COPY TO.
    fn respond(&self, reply: Reply, format: &Format, watched: Watched) -> Result<Response> {
        Ok(match reply {
            Reply::Tag(t) => Response::Execution(encode::tag(&t)),
            Reply::Rows { schema, batches } => encode::rows(&schema, batches, format).map_err(internal)?,
            Reply::TransactionStart(t) => Response::TransactionStart(Tag::new(&t)),
            Reply::TransactionEnd(t) => Response::TransactionEnd(Tag::new(&t)),
            Reply::Fetched { schema, batches } => tagged(encode::rows(&schema, batches, format), "FETCH")?,
            // Tagged `INSERT 0 n`: pgwire adds the row count to the tag.
            Reply::Returned { schema, batches } => tagged(encode::rows(&schema, batches, format), "INSERT 0")?,
            Reply::CopyOut { schema, batches, format } => {
                super::copy_out::response(&schema, batches.0, &format, watched).map_err(internal)?
            }
            Reply::CopyIn(copy) => {
                // A COPY FROM is timed when its data is all in.
                watched.uncounted();
                let target = crate::ingest::copy::CopyTarget::find(&self.session.engine().catalog, &copy.stream)?;
                let columns = copy.columns.len();
                let config = &self.session.engine().config;
                let state = CopyIn::new(target, &copy, config.copy_max_bytes, config.max_record_bytes)?;
                *self.session.copy.lock() = Some(state);
                let binary = copy.format.kind == crate::ingest::decode::FormatKind::Binary;
                Response::CopyIn(CopyResponse::new(i8::from(binary), columns, stream::empty()))
            }
        })
    }
}

/// Rows tagged `command n` instead of `SELECT n`.
fn tagged(rows: PgWireResult<Response>, command: &str) -> Result<Response> {
    Ok(match rows.map_err(internal)? {
        Response::Query(mut rows) => {
            rows.set_command_tag(command);
            Response::Query(rows)
        }
        other => other,
    })
}

fn internal(e: PgWireError) -> EddyError {
    EddyError::Internal(e.to_string())
}

/// In a failed transaction block only ROLLBACK (or COMMIT, which rolls
/// back) is accepted, as in PostgreSQL.
fn blocked_by_failed_transaction(status: TransactionStatus, statement: &Statement) -> bool {
    status == TransactionStatus::Error
        && !matches!(
            statement,
            Statement::Transaction(Transaction::Rollback | Transaction::Commit | Transaction::RollbackTo(_))
        )
}

/// A savepoint statement outside a transaction block is an error (25P01),
/// as in PostgreSQL.
fn outside_block(status: TransactionStatus, statement: &Statement) -> Option<Response> {
    let Statement::Transaction(t) = statement else {
        return None;
    };
    let kind = t.needs_block().filter(|_| status == TransactionStatus::Idle)?;
    let e = EddyError::from(SqlError::NoTransaction(kind));
    Some(Response::Error(Box::new(super::sqlstate::error_info(&e))))
}

fn failed_transaction_error() -> Response {
    let info = pgwire::error::ErrorInfo::new(
        "ERROR".into(),
        IN_FAILED_TRANSACTION.into(),
        "current transaction is aborted, commands ignored until end of transaction block".into(),
    );
    Response::Error(Box::new(info))
}

#[async_trait]
impl SimpleQueryHandler for EddyHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _busy = self.session.busy();
        let limit = self.session.engine().config.max_query_bytes;
        if query.len() > limit {
            let e = EddyError::LimitExceeded(format!(
                "query is {} bytes, over the limit of {limit} bytes; send large data with COPY or in several statements",
                query.len()
            ));
            return Ok(vec![Response::Error(Box::new(super::sqlstate::error_info(&e)))]);
        }
        let statements = match parse_sql(query) {
            Ok(s) => s,
            Err(e) => {
                return Ok(vec![Response::Error(Box::new(super::sqlstate::error_info(&e.into())))]);
            }
        };
        if statements.is_empty() {
            // A string of comments only, such as pgx's `-- ping` (Grafana's
            // health check): PostgreSQL answers EmptyQueryResponse.
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut status = client.transaction_status();
        let mut responses = Vec::with_capacity(statements.len());
        let count = statements.len();
        for (i, statement) in statements.into_iter().enumerate() {
            let last = i + 1 == count;
            if blocked_by_failed_transaction(status, &statement) {
                responses.push(failed_transaction_error());
                break;
            }
            if let Some(refused) = outside_block(status, &statement) {
                responses.push(refused);
                break;
            }
            let failed_commit = status == TransactionStatus::Error
                && matches!(statement, Statement::Transaction(Transaction::Commit | Transaction::Rollback));
            if failed_commit {
                self.session.end_transaction(); // a failed block's COMMIT rolls back
            }
            let is_copy = matches!(statement, Statement::Copy(_));
            let outcome = match statement {
                Statement::Subscribe(subscribe) => self.subscribe(client, subscribe).await,
                other => match self.deallocate_parsed(client, &other) {
                    Some(done) => Ok(done),
                    None if last => self.stream_query(other).await,
                    None => self.execute(other, &Format::UnifiedText).await,
                },
            };
            let outcome = match outcome {
                // The last statement's rows go out as they are made.
                Ok(Response::Query(rows)) if last => match super::streamed::send_all(client, rows, true).await {
                    Ok(sent) => Ok(sent),
                    Err(PgWireError::UserError(info)) => Ok(Response::Error(info)),
                    Err(e) => return Err(e),
                },
                other => other,
            };
            self.send_notices(client).await?;
            match outcome {
                Ok(Response::TransactionEnd(_)) if failed_commit => {
                    responses.push(Response::TransactionEnd(Tag::new("ROLLBACK")));
                    status = TransactionStatus::Idle;
                }
                Ok(r) => {
                    status = match &r {
                        Response::TransactionStart(_) => TransactionStatus::Transaction,
                        Response::TransactionEnd(_) => TransactionStatus::Idle,
                        _ => status,
                    };
                    responses.push(r);
                    if is_copy {
                        break; // the rest of the string waits for the COPY data
                    }
                }
                Err(e) => {
                    responses.push(Response::Error(Box::new(super::sqlstate::error_info(&e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// Parses and plans statements for the extended protocol.
#[derive(Debug)]
pub struct EddyQueryParser {
    session: Arc<Session>,
}

impl EddyQueryParser {
    async fn prepare(&self, sql: &str, declared: &[Option<Type>]) -> Result<Option<Prepared>> {
        let mut statements = parse_sql(sql)?;
        if let Some(Statement::Query(ast) | Statement::Write(ast)) = statements.last_mut() {
            crate::sql::param_hints::cast_function_arguments(ast, &super::params::declared_casts(declared));
        }
        if statements.len() > 1 {
            return Err(SqlError::Syntax("cannot insert multiple commands into a prepared statement".into()).into());
        }
        let Some(mut statement) = statements.pop() else {
            return Ok(None);
        };
        if let Statement::Prepared(PrepareSql::Execute { name, args }) = statement {
            statement = crate::sql::statement::prepare::executed(&self.session, &name, args)?;
        }
        let (plan, param_types, result) = match &statement {
            Statement::Write(ast) if returning_items(ast).is_some() => {
                let hints = crate::sql::param_hints::hinted_types(ast);
                let returning = Returning::plan(&self.session, (**ast).clone()).await?;
                let types = ordered_types(&returning.write_plan().get_parameter_types()?, &hints);
                (None, types, Some(returning.schema()?))
            }
            Statement::Query(ast) | Statement::Write(ast) => {
                let mut hints = crate::sql::param_hints::hinted_types(ast);
                let plan = crate::query::plan(&self.session, (**ast).clone()).await?;
                for (n, t) in crate::query::any_params::any_parameter_types(&plan) {
                    hints.entry(n).or_insert(t);
                }
                let types = ordered_types(&plan.get_parameter_types()?, &hints);
                let result = matches!(statement, Statement::Query(_)).then(|| plan.schema().inner().clone());
                (Some(plan), types, result)
            }
            Statement::Show(show) => (None, Vec::new(), Some(show.schema(&self.session))),
            Statement::Truncate(_) => (None, Vec::new(), Some(TruncateView::schema())),
            Statement::SetTtl(_) => (None, Vec::new(), Some(crate::sql::statement::set_ttl::SetTtl::schema())),
            Statement::Kafka(call) => (None, Vec::new(), Some(call.schema())),
            Statement::Cursor(cursor) => match cursor.declared_query() {
                // A DECLARE's query may have parameters (psycopg 3's named cursors).
                Some(query) => {
                    let hints = crate::sql::param_hints::hinted_types(query);
                    let plan = crate::query::plan(&self.session, query.clone()).await?;
                    (None, ordered_types(&plan.get_parameter_types()?, &hints), None)
                }
                None => (None, Vec::new(), cursor.schema(&self.session)),
            },
            Statement::ExplainView(_) => {
                (None, Vec::new(), Some(crate::sql::statement::explain_view::ExplainView::schema()))
            }
            _ => (None, Vec::new(), None),
        };
        let oids = match &statement {
            Statement::Query(ast) | Statement::Write(ast) => crate::sql::param_hints::declared_oids(ast),
            _ => Default::default(),
        };
        let pg_param_types = param_types
            .iter()
            .enumerate()
            .map(|(i, t)| oids.get(&(i + 1)).and_then(|oid| Type::from_oid(*oid)).unwrap_or_else(|| pg_type(t)))
            .collect();
        Ok(Some(Prepared { statement, plan, param_types, pg_param_types, result }))
    }
}

#[async_trait]
impl QueryParser for EddyQueryParser {
    type Statement = Prepared;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        self.prepare(sql, types).await.map_err(to_pgwire)
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.pg_param_types.clone())
    }

    fn get_result_schema(&self, stmt: &Prepared, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.result {
            Some(schema) => encode::pg_fields(schema, format.unwrap_or(&Format::UnifiedText)),
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for EddyHandler {
    type Statement = Prepared;
    type QueryParser = EddyQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &target.statement;
        let types = stmt
            .pg_param_types
            .iter()
            .enumerate()
            .map(|(i, t)| target.parameter_types.get(i).cloned().flatten().unwrap_or_else(|| t.clone()))
            .collect();
        let fields = self.parser.get_result_schema(stmt, None)?;
        Ok(DescribeStatementResponse::new(types, fields))
    }

    /// A Describe of a portal pgwire does not have may name a SQL cursor
    /// (`DECLARE`): PostgreSQL describes it, and psycopg 3's named cursors
    /// ask for it.
    async fn on_describe<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Describe,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        if message.target_type == pgwire::messages::extendedquery::TARGET_TYPE_BYTE_PORTAL
            && client.portal_store().get_portal(name).is_none()
            && let Some(schema) = crate::sql::statement::subscribe::cursor_schema(&self.session, name)
        {
            let fields = encode::pg_fields(&schema, &Format::UnifiedText)?;
            return pgwire::api::query::send_describe_response(client, &DescribePortalResponse::new(fields)).await;
        }
        self._on_describe(client, message).await
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &portal.statement.statement;
        let fields = self.parser.get_result_schema(stmt, Some(&portal.result_column_format))?;
        Ok(DescribePortalResponse::new(fields))
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Prepared>, max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _busy = self.session.busy();
        let stmt = &portal.statement.statement;
        if blocked_by_failed_transaction(client.transaction_status(), &stmt.statement) {
            return Ok(failed_transaction_error());
        }
        if client.transaction_status() == TransactionStatus::Error
            && matches!(stmt.statement, Statement::Transaction(Transaction::Commit))
        {
            // A failed block's COMMIT rolls back, and says so.
            self.session.end_transaction();
            return Ok(Response::TransactionEnd(Tag::new("ROLLBACK")));
        }
        if let Some(refused) = outside_block(client.transaction_status(), &stmt.statement) {
            return Ok(refused);
        }
        let outcome = match (&stmt.plan, self.deallocate_parsed(client, &stmt.statement)) {
            (_, Some(done)) => Ok(done),
            (Some(plan), None) => self.run_planned(stmt, plan.clone(), portal).await,
            (None, None) if matches!(&stmt.statement, Statement::Write(_)) => self.run_returning(stmt, portal).await,
            (None, None) if !stmt.param_types.is_empty() => match self.bind_params(stmt, portal) {
                Ok(params) => self.execute_with(stmt.statement.clone(), params, &portal.result_column_format).await,
                Err(e) => Err(e),
            },
            (None, None) => self.execute(stmt.statement.clone(), &portal.result_column_format).await,
        };
        let outcome = match outcome {
            // pgwire collects a portal's rows when no row limit is asked
            // for: send them as they come instead.
            Ok(Response::Query(rows)) if max_rows == 0 => super::streamed::send_all(client, rows, false).await,
            other => other.map_err(to_pgwire),
        };
        self.send_notices(client).await?;
        outcome
    }
}

impl EddyHandler {
    /// Sends the warnings the statement queued, as NoticeResponses, and the
    /// notifications that arrived for the session's LISTENs (its own
    /// NOTIFYs included), as PostgreSQL sends them at the end of a statement.
    async fn send_notices<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        for notice in self.session.take_notices() {
            let mut info = pgwire::error::ErrorInfo::new(notice.severity.into(), notice.code.into(), notice.message);
            info.detail = notice.detail;
            let notice = pgwire::messages::response::NoticeResponse::from(info);
            futures::SinkExt::feed(client, PgWireBackendMessage::NoticeResponse(notice)).await?;
        }
        super::serve::feed_notifications(client, self.session.mailbox()).await
    }

    /// Runs a SUBSCRIBE: streams it until it is cancelled or fails.
    async fn subscribe<C>(
        &self,
        client: &mut C,
        subscribe: crate::sql::statement::subscribe::Subscribe,
    ) -> Result<Response>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = &self.session;
        session
            .guard(async {
                let subscription = subscribe.open(session).await?;
                super::subscribe::stream(client, subscription, subscribe.copy).await
            })
            .await?;
        Ok(Response::Execution(Tag::new("SUBSCRIBE")))
    }

    /// Runs a prepared DataFusion statement: a write is answered with its
    /// count, and a query's rows stream to the client.
    async fn run_planned(&self, stmt: &Prepared, plan: LogicalPlan, portal: &Portal<Prepared>) -> Result<Response> {
        let watched = Watched::new(self.session.arm(), self.session.busy(), stmt.statement.kind());
        let params = self.bind_params(stmt, portal);
        let session = &self.session;
        let Statement::Write(ast) = &stmt.statement else {
            let outcome = watched.stop().run(async { crate::query::stream(session, plan, params?).await }).await;
            return streamed(outcome, &portal.result_column_format, watched);
        };
        let (_, batches) = watched.stop().run(async { crate::query::run(session, plan, params?).await }).await?;
        let rows = crate::sql::statement::insert::count_rows(&batches) as usize;
        Ok(Response::Execution(match crate::sql::statement::insert::command(ast) {
            "INSERT" => Tag::new("INSERT").with_oid(0).with_rows(rows),
            other => Tag::new(other).with_rows(rows),
        }))
    }

    /// Runs a prepared `INSERT ... RETURNING` with the portal's parameters.
    async fn run_returning(&self, stmt: &Prepared, portal: &Portal<Prepared>) -> Result<Response> {
        let watched = Watched::new(self.session.arm(), self.session.busy(), stmt.statement.kind());
        let params = self.bind_params(stmt, portal)?;
        let reply = watched.stop().run(stmt.statement.clone().execute(&self.session, params)).await?;
        self.respond(reply, &portal.result_column_format, watched)
    }

    /// The portal's parameter values, typed as the statement declared them.
    fn bind_params(&self, stmt: &Prepared, portal: &Portal<Prepared>) -> Result<Option<ParamValues>> {
        let pg_types: Vec<Type> = (0..stmt.param_types.len())
            .map(|i| {
                portal
                    .statement
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| stmt.pg_param_types[i].clone())
            })
            .collect();
        let params = bind(portal, &stmt.param_types, &pg_types)?;
        Ok((!stmt.param_types.is_empty()).then_some(params))
    }

    /// A simple Query's last SELECT, its rows streamed to the client.
    /// Earlier statements of the string are collected instead: pgwire sends
    /// their results after the whole string has run, and a result streamed
    /// then would see the later statements' writes.
    async fn stream_query(&self, query: Statement) -> Result<Response> {
        let kind = query.kind();
        let Statement::Query(query) = query else {
            return self.execute(query, &Format::UnifiedText).await;
        };
        let watched = Watched::new(self.session.arm(), self.session.busy(), kind);
        let session = &self.session;
        let outcome = watched
            .stop()
            .run(async {
                let plan = crate::query::plan(session, *query).await?;
                crate::query::stream(session, plan, None).await
            })
            .await;
        streamed(outcome, &Format::UnifiedText, watched)
    }
}

/// The response for a query that has started: its rows stream, and
/// `watched` counts its latency when they end.
fn streamed(
    outcome: Result<(SchemaRef, SendableRecordBatchStream)>,
    format: &Format,
    watched: Watched,
) -> Result<Response> {
    let (schema, batches) = outcome?;
    super::streamed::response(&schema, batches, format, watched).map_err(internal)
}

#[async_trait]
impl CopyHandler for EddyHandler {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _busy = self.session.busy(); // data arriving is not idleness
        if let Some(copy) = self.session.copy.lock().as_mut() {
            copy.data(&copy_data.data);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let copy = self.session.copy.lock().take();
        let Some(copy) = copy else {
            return Err(to_pgwire(EddyError::Protocol("CopyDone without a COPY in progress".into())));
        };
        let started = copy.started();
        let rows = copy.finish(self.session.commit_mode(), self.session.transaction()).await;
        self.session.engine().sessions.query_done(crate::observe::QueryKind::Copy, started.elapsed());
        let rows = rows.map_err(|e| to_pgwire(e.into()))?;
        let tag = Tag::new("COPY").with_rows(rows as usize);
        futures::SinkExt::send(client, PgWireBackendMessage::CommandComplete(tag.into())).await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session.copy.lock().take();
        to_pgwire(IngestError::CopyAborted(fail.message).into())
    }
}
