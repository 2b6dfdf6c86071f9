//! What a consumer feeds: a stream, where every message is rows appended,
//! or a table, where every message upserts or deletes one key.

use std::sync::Arc;

use super::batch::{Decoded, MessageBatch, MessageDecoder};
use super::keyed::KeyedDecoder;
use super::options::ConsumerOptions;
use crate::catalog::{Catalog, CatalogError, Relation, StreamEntry};
use crate::ingest::IngestError;
use crate::table::TableEntry;

/// The relation a consumer writes to.
#[derive(Debug, Clone)]
pub enum Target {
    /// A stream: each message's value holds rows; keys are ignored.
    Stream(Arc<StreamEntry>),
    /// A table with a primary key: each message's key is a row's key.
    Table(Arc<TableEntry>),
}

impl Target {
    /// The stream or table called `name`.
    pub fn resolve(catalog: &Catalog, name: &str) -> Result<Self, CatalogError> {
        match catalog.relation(name) {
            Some(Relation::Stream(s)) => Ok(Target::Stream(s)),
            Some(Relation::Table(t)) if !t.def.primary_key.is_empty() => Ok(Target::Table(t)),
            Some(Relation::Table(_)) => Err(CatalogError::WrongObjectType {
                name: name.to_string(),
                expected: "stream or a table with a primary key",
                hint: "a Kafka message's key fills a table's primary key; declare one".into(),
            }),
            Some(Relation::View(_)) => Err(CatalogError::WrongObjectType {
                name: name.to_string(),
                expected: "stream or a table",
                hint: "Kafka topics feed streams and tables, and views read them".into(),
            }),
            None => Err(CatalogError::UndefinedRelation(name.to_string())),
        }
    }

    /// A decoder of messages into this relation's rows.
    pub fn decoder(&self, options: &ConsumerOptions) -> Decoder {
        match self {
            Target::Stream(s) => Decoder::Stream(MessageDecoder::new(&options.format, s.def.schema.clone())),
            Target::Table(t) => {
                let schema = t.def.schema.clone();
                let key = t.def.primary_key.iter().filter_map(|k| schema.index_of(k).ok()).collect();
                let not_null = t.def.columns.iter().map(|c| c.not_null).collect();
                Decoder::Table(KeyedDecoder::new(schema, key, not_null, options.key_format, &options.format))
            }
        }
    }
}

/// Decodes a micro-batch for a [`Target`].
#[derive(Debug)]
pub enum Decoder {
    /// Rows of a stream.
    Stream(MessageDecoder),
    /// Upserts and deletions of a table.
    Table(KeyedDecoder),
}

impl Decoder {
    /// Decodes a whole micro-batch.
    pub fn decode(&self, batch: &MessageBatch) -> Result<Decoded, IngestError> {
        match self {
            Decoder::Stream(d) => d.decode(batch),
            Decoder::Table(d) => d.decode(batch),
        }
    }
}
