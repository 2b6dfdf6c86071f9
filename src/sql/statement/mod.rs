//! One file per statement kind. Each has the same shape: a struct the parser
//! fills in, and an `execute` that applies it and says what to reply.

pub mod checkpoint;
pub mod copy;
pub mod copy_to;
pub mod create_sink;
pub mod create_stream;
pub mod create_table;
pub mod create_view;
pub mod drop;
pub mod explain_view;
pub mod insert;
pub mod kafka;
pub mod kafka_binding;
pub mod listen;
pub mod prepare;
pub mod query;
pub mod returning;
pub mod set;
pub mod set_ttl;
pub mod show;
pub mod subscribe;
pub mod transaction;
pub mod truncate;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast;

use crate::error::Result;
use crate::server::Session;

/// The function of `SELECT schema.f(...)` with no FROM and nothing else
/// selected: how PipelineDB's management functions are called.
pub fn lone_function_call(query: &ast::Query) -> Option<&ast::Function> {
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if !select.from.is_empty() || select.projection.len() != 1 {
        return None;
    }
    match &select.projection[0] {
        ast::SelectItem::UnnamedExpr(ast::Expr::Function(f))
        | ast::SelectItem::ExprWithAlias { expr: ast::Expr::Function(f), .. } => Some(f),
        _ => None,
    }
}

/// A parsed statement.
#[derive(Debug, Clone)]
pub enum Statement {
    /// `CREATE STREAM` or `CREATE FOREIGN TABLE ... SERVER pipelinedb`.
    CreateStream(create_stream::CreateStream),
    /// `CREATE [CONTINUOUS] VIEW`.
    CreateView(create_view::CreateView),
    /// `DROP STREAM | FOREIGN TABLE | [CONTINUOUS] VIEW`.
    Drop(drop::Drop),
    /// `SELECT pipelinedb.truncate_continuous_view('v')`.
    Truncate(truncate::TruncateView),
    /// `SELECT pipeline_kafka.f(...)`.
    Kafka(kafka::KafkaCall),
    /// `SELECT pipelinedb.set_ttl(...)`.
    SetTtl(set_ttl::SetTtl),
    /// `CREATE TABLE`.
    CreateTable(create_table::CreateTable),
    /// `CREATE SINK`.
    CreateSink(create_sink::CreateSink),
    /// `INSERT INTO stream | table ...`, `UPDATE table ...`, `DELETE FROM table ...`.
    Write(Box<ast::Statement>),
    /// `COPY stream FROM STDIN`.
    Copy(copy::CopyFrom),
    /// `COPY relation | (query) TO STDOUT`.
    CopyTo(copy_to::CopyTo),
    /// A query DataFusion runs (`SELECT`, `VALUES`, `EXPLAIN`).
    Query(Box<ast::Statement>),
    /// `SET` and `RESET`.
    Set(set::SetVar),
    /// `SHOW`.
    Show(show::ShowVar),
    /// `BEGIN`, `COMMIT`, `ROLLBACK` and friends.
    Transaction(transaction::Transaction),
    /// `CREATE EXTENSION name`.
    CreateExtension(String),
    /// A statement accepted for compatibility that has nothing to do.
    Noop(&'static str),
    /// `CHECKPOINT`.
    Checkpoint,
    /// `DISCARD ALL` (and `DISCARD PLANS | TEMP | SEQUENCES`): closes the
    /// session's cursors, stops its LISTENs and forgets its SQL-prepared
    /// statements, as PostgreSQL does.
    /// The tag names which.
    Discard(String),
    /// `PREPARE`, `EXECUTE` and `DEALLOCATE`.
    Prepared(prepare::PrepareSql),
    /// `LISTEN`, `UNLISTEN` and `NOTIFY`.
    Listen(listen::Listen),
    /// `SUBSCRIBE` and `COPY (SUBSCRIBE ...) TO STDOUT`; the wire layer
    /// streams it (it never ends by itself).
    Subscribe(subscribe::Subscribe),
    /// `DECLARE ... CURSOR`, `FETCH` and `CLOSE`.
    Cursor(subscribe::CursorSql),
    /// `EXPLAIN VIEW name`: a continuous view's incremental plan.
    ExplainView(explain_view::ExplainView),
}

/// Rows still being made by a running query.
pub struct RowStream(pub datafusion::physical_plan::SendableRecordBatchStream);

impl std::fmt::Debug for RowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowStream")
    }
}

/// What a statement asks the wire layer to send back.
#[derive(Debug)]
pub enum Reply {
    /// A command tag such as `CREATE VIEW` or `INSERT 0 3`.
    Tag(String),
    /// Rows, with their schema.
    Rows {
        /// The columns.
        schema: SchemaRef,
        /// The rows.
        batches: Vec<RecordBatch>,
    },
    /// Start of `COPY ... FROM STDIN`: the wire layer switches to COPY mode.
    CopyIn(copy::CopyFrom),
    /// Rows for `COPY ... TO STDOUT`, sent as COPY data as the query makes
    /// them.
    CopyOut {
        /// The columns.
        schema: SchemaRef,
        /// The rows.
        batches: RowStream,
        /// How they are written.
        format: crate::ingest::decode::CopyFormat,
    },
    /// `BEGIN`: the session is now in a transaction block.
    TransactionStart(String),
    /// `COMMIT` or `ROLLBACK`: the transaction block ended.
    TransactionEnd(String),
    /// Rows an `INSERT ... RETURNING` wrote, tagged `INSERT 0 n`.
    Returned {
        /// The columns.
        schema: SchemaRef,
        /// The rows.
        batches: Vec<RecordBatch>,
    },
    /// Rows of a `FETCH`, tagged `FETCH n`.
    Fetched {
        /// The columns.
        schema: SchemaRef,
        /// The rows.
        batches: Vec<RecordBatch>,
    },
}

impl Statement {
    /// Runs the statement for `session`. `params` are the bound values of a
    /// prepared statement.
    pub async fn execute(self, session: &Session, params: Option<ParamValues>) -> Result<Reply> {
        if let Some(action) = self.writes() {
            session.check_writable(action)?;
        }
        match self {
            Statement::CreateStream(s) => s.execute(session).await,
            Statement::CreateView(v) => v.execute(session).await,
            Statement::Drop(d) => d.execute(session).await,
            Statement::Truncate(t) => t.execute(session).await,
            Statement::Kafka(k) => k.execute(session).await,
            Statement::SetTtl(t) => t.execute(session).await,
            Statement::CreateTable(t) => t.execute(session).await,
            Statement::CreateSink(s) => s.execute(session).await,
            Statement::Write(i) => insert::execute(*i, session, params).await,
            Statement::Copy(c) => c.execute(session).await,
            Statement::CopyTo(c) => c.execute(session).await,
            Statement::Query(q) => query::execute(*q, session, params).await,
            Statement::Set(s) => s.execute(session),
            Statement::Show(s) => s.execute(session),
            Statement::Transaction(t) => t.execute(session).await,
            Statement::CreateExtension(name) => create_extension(&name),
            Statement::Noop(tag) => Ok(Reply::Tag(tag.to_string())),
            Statement::Checkpoint => checkpoint::execute(session).await,
            Statement::Discard(tag) => {
                if tag == "DISCARD ALL" {
                    session.discard_all();
                }
                Ok(Reply::Tag(tag))
            }
            Statement::Prepared(p) => p.execute(session).await,
            Statement::Listen(l) => l.execute(session),
            Statement::Cursor(c) => c.execute(session, params).await,
            Statement::ExplainView(e) => e.execute(session),
            Statement::Subscribe(_) => Err(crate::sql::SqlError::Unsupported(
                "SUBSCRIBE streams rows until it is cancelled, which the extended protocol cannot carry; send it as a simple query, or use DECLARE c CURSOR FOR SUBSCRIBE ... and FETCH".into(),
            )
            .into()),
        }
    }

    /// What the statement changes, for refusing it to read-only users; `None`
    /// for statements that only read (or only change the session).
    pub fn writes(&self) -> Option<&'static str> {
        match self {
            Statement::CreateStream(_)
            | Statement::CreateView(_)
            | Statement::CreateTable(_)
            | Statement::CreateSink(_)
            | Statement::Drop(_) => Some("run DDL"),
            Statement::Truncate(_) => Some("truncate a view"),
            Statement::Kafka(_) => Some("change Kafka consumers"),
            Statement::SetTtl(_) => Some("change a view's TTL"),
            Statement::Write(_) | Statement::Copy(_) => Some("write to a stream or table"),
            Statement::CreateExtension(_) => Some("create an extension"),
            Statement::Checkpoint => Some("run CHECKPOINT"),
            Statement::Query(_)
            | Statement::CopyTo(_)
            | Statement::Set(_)
            | Statement::Show(_)
            | Statement::Transaction(_)
            | Statement::Noop(_)
            | Statement::Discard(_)
            | Statement::Prepared(_)
            | Statement::Listen(_)
            | Statement::Subscribe(_)
            | Statement::ExplainView(_)
            | Statement::Cursor(_) => None,
        }
    }

    /// The kind its latency is counted under.
    pub fn kind(&self) -> crate::observe::QueryKind {
        use crate::observe::QueryKind;
        match self {
            Statement::Query(_)
            | Statement::CopyTo(_)
            | Statement::Show(_)
            | Statement::Cursor(_)
            | Statement::ExplainView(_)
            | Statement::Subscribe(_) => QueryKind::Read,
            Statement::Write(_) => QueryKind::Write,
            Statement::Copy(_) => QueryKind::Copy,
            Statement::CreateStream(_)
            | Statement::CreateView(_)
            | Statement::CreateTable(_)
            | Statement::CreateSink(_)
            | Statement::Drop(_)
            | Statement::Truncate(_)
            | Statement::SetTtl(_)
            | Statement::CreateExtension(_) => QueryKind::Ddl,
            Statement::Kafka(_)
            | Statement::Checkpoint
            | Statement::Transaction(_)
            | Statement::Set(_)
            | Statement::Noop(_)
            | Statement::Discard(_)
            | Statement::Prepared(_)
            | Statement::Listen(_) => QueryKind::Other,
        }
    }

    /// Whether the statement may return rows (for Describe).
    pub fn returns_rows(&self) -> bool {
        if let Statement::Write(w) = self {
            return returning::returning_items(w).is_some();
        }
        matches!(
            self,
            Statement::Query(_)
                | Statement::Truncate(_)
                | Statement::Kafka(_)
                | Statement::Show(_)
                | Statement::SetTtl(_)
                | Statement::Subscribe(_)
                | Statement::Cursor(subscribe::CursorSql::Fetch { .. })
                | Statement::ExplainView(_)
        )
    }
}

/// `CREATE EXTENSION`: the PipelineDB extensions are built in, so accepting
/// them is all there is to do; other extensions do not exist here.
fn create_extension(name: &str) -> Result<Reply> {
    match name {
        "pipelinedb" | "pipeline_kafka" | "plpgsql" => Ok(Reply::Tag("CREATE EXTENSION".into())),
        other => Err(crate::sql::SqlError::Unsupported(format!(
            "extension \"{other}\" is not available; Eddy has pipelinedb and pipeline_kafka built in"
        ))
        .into()),
    }
}
