//! `CREATE SINK [IF NOT EXISTS] name FROM relation WITH (kafka_topic = ...,
//! ...)`: a view's, table's or stream's changes written to a Kafka topic,
//! exactly once (`crate::sink`). `DROP SINK` is in `drop.rs`, `SHOW SINKS`
//! reads `pipelinedb.sinks`.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;

use super::Reply;
use crate::checkpoint::manifest::SinkRecord;
use crate::error::Result;
use crate::server::Session;
use crate::sql::{SqlError, normalize_object_name};

/// A CREATE SINK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSink {
    /// The sink's name.
    pub name: String,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// The relation written out.
    pub relation: String,
    /// Its `WITH (...)` options.
    pub options: Vec<(String, String)>,
}

impl CreateSink {
    /// Parses the statement; the parser is at `CREATE SINK`.
    pub fn parse(parser: &mut Parser) -> Result<Self, SqlError> {
        let syntax = |e: datafusion::sql::sqlparser::parser::ParserError| SqlError::Syntax(e.to_string());
        parser.next_token(); // CREATE
        parser.next_token(); // SINK
        let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
        let name = normalize_object_name(&parser.parse_object_name(false).map_err(syntax)?)?;
        parser.expect_keyword(Keyword::FROM).map_err(syntax)?;
        let relation = normalize_object_name(&parser.parse_object_name(false).map_err(syntax)?)?;
        let options = crate::sql::parser::parse_with_options(parser)?;
        if options.is_empty() {
            return Err(SqlError::Syntax(format!(
                "CREATE SINK needs WITH (kafka_topic = '...'), as in CREATE SINK {name} FROM {relation} WITH (kafka_topic = '{relation}')"
            )));
        }
        Ok(Self { name, if_not_exists, relation, options })
    }

    /// Makes and starts the sink, and checkpoints it.
    pub async fn execute(self, session: &Session) -> Result<Reply> {
        let engine = session.engine();
        let _ddl = engine.ddl_lock().await;
        if engine.sinks.exists(&self.name) && self.if_not_exists {
            session.notice("42710", format!("sink \"{}\" already exists, skipping", self.name), None);
            return Ok(Reply::Tag("CREATE SINK".into()));
        }
        let record =
            SinkRecord { name: self.name, relation: self.relation, options: self.options, owned: false, outbox: None };
        engine.sinks.create(&record, &engine.kafka.brokers())?;
        engine.ddl_done().await?;
        Ok(Reply::Tag("CREATE SINK".into()))
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::parser::parse_sql;
    use crate::sql::statement::Statement;

    #[test]
    fn parses_create_sink() {
        let stmts =
            parse_sql("CREATE SINK IF NOT EXISTS S1 FROM totals WITH (kafka_topic = 'out', key = 'a')").unwrap();
        let Statement::CreateSink(sink) = &stmts[0] else { panic!("{stmts:?}") };
        assert_eq!((sink.name.as_str(), sink.relation.as_str(), sink.if_not_exists), ("s1", "totals", true));
        assert_eq!(sink.options[0], ("kafka_topic".to_string(), "out".to_string()));
        assert!(parse_sql("CREATE SINK s FROM v").unwrap_err().to_string().contains("kafka_topic"));
    }
}
