//! Query results that stream to the client as DataFusion makes them.
//!
//! A large result is never held whole: rows go out batch by batch, and the
//! socket's backpressure slows the query down. A portal's Execute with a
//! row limit (JDBC's `setFetchSize`, psycopg's named cursors) takes only
//! the rows it asks for, and pgwire suspends the portal until the next
//! Execute; an Execute without a limit gets its rows as they come
//! ([`send_all`]). The statement's cancel and `statement_timeout` keep watching
//! it until its last row, and the session stays busy (not idle) as long.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{Sink, SinkExt, Stream, StreamExt, stream};
use pgwire::api::portal::Format;
use pgwire::api::results::{QueryResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::RowDescription;

use super::encode;
use super::sqlstate::to_pgwire;
use crate::error::EddyError;
use crate::observe::QueryKind;
use crate::server::cancel::Stop;
use crate::server::session::Busy;

/// What a streaming result carries for its statement until the last row:
/// what stops it, the busy session, and when it started (its latency is
/// counted when it ends, however it ends).
#[derive(Debug)]
pub struct Watched {
    stop: Stop,
    busy: Busy,
    /// The statement's kind for the query-latency histogram; `None` once
    /// something else times it.
    kind: Option<QueryKind>,
    started: Instant,
}

impl Watched {
    /// Watches a statement of `kind` that starts now.
    pub fn new(stop: Stop, busy: Busy, kind: QueryKind) -> Self {
        Watched { stop, busy, kind: Some(kind), started: Instant::now() }
    }

    /// What stops the statement.
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// Leaves the statement's latency to be counted elsewhere (a COPY FROM
    /// is timed when its data is all in).
    pub fn uncounted(mut self) {
        self.kind = None;
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(kind) = self.kind {
            self.busy.session().engine().sessions.query_done(kind, self.started.elapsed());
        }
    }
}

/// `batches` as a query response that encodes each batch when the client
/// is ready for it.
pub fn response(
    schema: &Schema,
    batches: SendableRecordBatchStream,
    format: &Format,
    watched: Watched,
) -> PgWireResult<Response> {
    let fields = Arc::new(encode::pg_fields(schema, format)?);
    let (row_fields, format) = (fields.clone(), format.clone());
    let rows = watched_batches(batches, watched).flat_map(move |batch| {
        let rows = batch.map_err(to_pgwire).and_then(|b| encode::data_rows(b, &row_fields, &format));
        match rows {
            Ok(rows) => stream::iter(rows.into_iter().map(Ok).collect::<Vec<_>>()),
            Err(e) => stream::iter(vec![Err(e)]),
        }
    });
    Ok(Response::Query(QueryResponse::new(fields, rows)))
}

/// `batches`, each taken only if the statement was not cancelled and has
/// not timed out meanwhile; the first error ends them.
pub fn watched_batches(
    batches: SendableRecordBatchStream,
    watched: Watched,
) -> impl Stream<Item = Result<RecordBatch, EddyError>> + Send + 'static {
    stream::unfold(Some((batches, watched)), |feed| async move {
        let (mut batches, watched) = feed?;
        let next = tokio::select! {
            biased;
            stopped = watched.stop.stopped() => Some(Err(stopped)),
            batch = batches.next() => batch.map(|b| b.map_err(EddyError::from)),
        };
        match next {
            Some(Ok(batch)) => Some((Ok(batch), Some((batches, watched)))),
            // An error ends the result: nothing is polled after it.
            Some(Err(e)) => Some((Err(e), None)),
            None => None,
        }
    })
}

/// Sends every row of `rows` to the client as it comes, after its
/// RowDescription when `describe` (a simple Query), and answers with the
/// command tag for pgwire to send. pgwire would collect a portal's rows
/// first when no row limit is asked for; and rows sent here come before the
/// notices and notifications their statement raised (a `pg_notify` runs
/// as its row is made).
pub async fn send_all<C>(client: &mut C, mut rows: QueryResponse, describe: bool) -> PgWireResult<Response>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if describe {
        let fields = rows.row_schema().iter().map(Into::into).collect();
        client.feed(PgWireBackendMessage::RowDescription(RowDescription::new(fields))).await?;
    }
    let tag = rows.command_tag().to_owned();
    let mut sent = 0;
    let data_rows = rows.data_rows();
    while let Some(row) = data_rows.next().await {
        client.feed(PgWireBackendMessage::DataRow(row?)).await?;
        sent += 1;
    }
    Ok(Response::Execution(Tag::new(&tag).with_rows(sent)))
}
