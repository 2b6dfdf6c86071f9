//! # Eddy: a streaming SQL database
//!
//! Streams are declared in SQL and fed by Kafka topics, `INSERT` and `COPY`.
//! Continuous views are SQL queries over streams, kept up to date
//! incrementally: raw events are never stored, only each view's mergeable
//! partial-aggregate state, checkpointed to a data directory with an insert
//! log so that it survives a crash. Everything is served over the PostgreSQL
//! wire protocol.
//!
//! ## Rooms
//!
//! - [`server`]: startup, the accept loop, shutdown, configuration, sessions.
//! - [`auth`]: users and passwords (SCRAM-SHA-256, md5), TLS, read-only users.
//! - [`pgwire`]: the wire protocol, result encoding, SQLSTATE mapping.
//! - [`sql`]: parsing, and one file per statement kind.
//! - [`catalog`]: the one owner of names.
//! - [`planner`]: a view's query, split at its aggregate for incremental maintenance.
//! - [`stream`]: the dataflow: one operator task per view, bounded channels.
//! - [`state`]: per-group partial-aggregate state.
//! - [`ingest`]: INSERT, COPY and their decoders.
//! - [`query`]: the read path, DataFusion over the views' state.
//! - [`checkpoint`]: the data directory: insert log, checkpoints, recovery.
//! - [`generate`]: `eddy generate`, a load generator for Kafka topics.
//! - [`window`]: sliding, tumbling and hopping windows, watermarks and TTL.
//! - [`clock`]: the server's clock, manual in tests.
//! - [`pg_catalog`]: `pg_catalog` for psql, drivers and dashboards.
//! - [`push`]: SUBSCRIBE and LISTEN/NOTIFY queues.
//! - [`sink`]: Kafka sinks, exactly once.
//! - [`observe`]: counters and histograms each room keeps about itself.
//! - [`http`]: `GET /metrics`, `GET /api/status` and the status page.
//!
//! ## Data flow
//!
//! A client's SQL arrives through [`pgwire`], is parsed by [`sql`], and runs
//! as a statement. DDL changes the [`catalog`]; `CREATE VIEW` also plans the
//! view ([`planner`]) and starts its operator ([`stream`]). `INSERT` and
//! `COPY` ([`ingest`]) produce Arrow batches that go to every view of the
//! stream; each view pre-aggregates the batch with DataFusion and merges the
//! partial states into its [`state`]. `SELECT` is planned by DataFusion over
//! the views ([`query`]), and [`pgwire`] encodes the rows. Changes go out
//! through [`push`]: each view publishes its epochs to its SUBSCRIBErs and
//! its NOTIFY channel, and [`pgwire`] sends them, and LISTENed
//! notifications, on the connections.
//!
//! See `docs/architecture.md` for the longer story.

pub mod auth;
pub mod catalog;
pub mod checkpoint;
pub mod clock;
pub mod error;
pub mod generate;
pub mod http;
pub mod ingest;
pub mod observe;
pub mod pg_catalog;
pub mod pgwire;
pub mod planner;
pub mod push;
pub mod query;
pub mod server;
pub mod sink;
pub mod sql;
pub mod state;
pub mod stream;
pub mod table;
pub mod window;

pub use error::{EddyError, Result};
pub use server::{Config, Server};
