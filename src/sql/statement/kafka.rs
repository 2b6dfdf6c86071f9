//! `SELECT pipeline_kafka.f(...)`: pipeline_kafka's functions, which manage
//! brokers and consumers.
//!
//! - `add_broker(host)` and `remove_broker(host)`;
//! - `consume_begin(topic, stream, format := ..., delimiter := ..., quote := ...,
//!   escape := ..., batchsize := ..., maxbytes := ..., parallelism := ...,
//!   start_offset := ..., group_id := ...)`, and `consume_begin()` for every
//!   stopped consumer;
//! - `consume_end(topic, stream)`, and `consume_end()` for every consumer;
//! - `produce_message(topic, message [, partition, key])`, which returns once
//!   the broker has the message.
//!
//! Each returns one row with the text `success`, as pipeline_kafka did.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, UnaryOperator, Value,
};

use super::Reply;
use crate::error::{EddyError, Result};
use crate::ingest::kafka::options::{ConsumerOptions, RawOptions};
use crate::ingest::kafka::{Begun, KafkaError};
use crate::server::Session;
use crate::sql::SqlError;

/// The schema the functions live in.
const SCHEMA: &str = "pipeline_kafka";

/// `consume_begin`'s parameters, in positional order.
const BEGIN_PARAMS: [&str; 12] = [
    "topic",
    "relation",
    "format",
    "delimiter",
    "quote",
    "escape",
    "batchsize",
    "maxbytes",
    "parallelism",
    "start_offset",
    "group_id",
    "timeout",
];

/// A call of one pipeline_kafka function.
#[derive(Debug, Clone)]
pub struct KafkaCall {
    /// The function, without its schema.
    pub function: String,
    /// Arguments by name (positional ones get their parameter's name); values as text.
    pub args: RawOptions,
}

impl KafkaCall {
    /// Recognizes `SELECT pipeline_kafka.f(...)`; any other query gives `None`.
    pub fn from_query(query: &Query) -> Result<Option<Self>, SqlError> {
        let Some(f) = super::lone_function_call(query) else {
            return Ok(None);
        };
        let name = f.name.to_string().to_lowercase();
        let Some(function) = name.strip_prefix("pipeline_kafka.") else {
            return Ok(None);
        };
        let params: &[&str] = match function {
            "add_broker" | "remove_broker" => &["host"],
            "consume_begin" => &BEGIN_PARAMS,
            "consume_end" => &["topic", "relation"],
            "produce_message" => &["topic", "message", "partition", "key"],
            other => {
                return Err(SqlError::Unsupported(format!(
                    "function {SCHEMA}.{other} does not exist; pipeline_kafka has add_broker, remove_broker, consume_begin, consume_end and produce_message"
                )));
            }
        };
        let args = match &f.args {
            FunctionArguments::List(list) => arguments(function, params, &list.args)?,
            FunctionArguments::None => Vec::new(),
            FunctionArguments::Subquery(_) => {
                return Err(SqlError::Unsupported(format!("{SCHEMA}.{function} takes values, not a subquery")));
            }
        };
        Ok(Some(Self { function: function.to_string(), args }))
    }

    /// The one column the call returns.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(self.function.clone(), DataType::Utf8, true)]))
    }

    /// Runs the function.
    pub async fn execute(self, session: &Session) -> Result<Reply> {
        let engine = session.engine();
        let kafka = &engine.kafka;
        match self.function.as_str() {
            "produce_message" => {
                self.produce(kafka).await?;
                return self.success();
            }
            "add_broker" => kafka.add_broker(&self.required("host")?)?,
            "remove_broker" => kafka.remove_broker(&self.required("host")?)?,
            "consume_begin" if self.args.is_empty() => {
                kafka.consume_begin_all(&engine.catalog)?;
            }
            "consume_begin" => {
                let topic = self.required("topic")?;
                let stream = self.required("relation")?.to_lowercase();
                let rest: RawOptions =
                    self.args.iter().filter(|(k, _)| k != "topic" && k != "relation").cloned().collect();
                let options = ConsumerOptions::from_args(&rest)?;
                if let Begun::Retrying(why) = kafka.consume_begin(&engine.catalog, &topic, &stream, options).await? {
                    session.warn(format!(
                        "Kafka broker not reachable ({why}); the consumer keeps retrying in the background, see pipeline_kafka.consumers"
                    ));
                }
            }
            "consume_end" if self.args.is_empty() => {
                kafka.consume_end_all().await;
            }
            _ => {
                let topic = self.required("topic")?;
                let stream = self.required("relation")?.to_lowercase();
                kafka.consume_end(&topic, &stream).await?;
            }
        }
        engine.ddl_done().await?;
        self.success()
    }

    /// pipeline_kafka's answer: one row, `success`.
    fn success(&self) -> Result<Reply> {
        let schema = self.schema();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["success"]))])
            .map_err(|e| EddyError::Internal(e.to_string()))?;
        Ok(Reply::Rows { schema, batches: vec![batch] })
    }

    /// `produce_message(topic, message [, partition, key])`.
    async fn produce(&self, kafka: &crate::ingest::kafka::Kafka) -> Result<(), KafkaError> {
        let topic = self.required("topic")?;
        let message = self.required("message")?;
        let get = |name: &str| self.args.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone());
        let partition = match get("partition") {
            Some(p) => Some(p.parse::<i32>().ok().filter(|p| *p >= 0).ok_or_else(|| {
                KafkaError::InvalidOption(format!("partition '{p}' must be a partition number, 0 or more"))
            })?),
            None => None,
        };
        let key = get("key");
        let message = crate::ingest::kafka::produce::Message {
            topic: &topic,
            payload: message.as_bytes(),
            partition,
            key: key.as_deref().map(str::as_bytes),
        };
        kafka.produce(message).await
    }

    fn required(&self, name: &str) -> Result<String, KafkaError> {
        match self.args.iter().find(|(k, _)| k == name) {
            Some((_, Some(v))) => Ok(v.clone()),
            _ => Err(KafkaError::InvalidOption(format!("{SCHEMA}.{} needs its {name} argument", self.function))),
        }
    }
}

fn arguments(function: &str, params: &[&str], args: &[FunctionArg]) -> Result<RawOptions, SqlError> {
    let mut out: RawOptions = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let (name, value) = match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => match params.get(i) {
                Some(p) if out.len() == i => (p.to_string(), e),
                _ => {
                    return Err(SqlError::InvalidParameter(format!(
                        "{SCHEMA}.{function}: positional argument {} is out of place",
                        i + 1
                    )));
                }
            },
            FunctionArg::Named { name, arg: FunctionArgExpr::Expr(e), .. } => (name.value.to_lowercase(), e),
            FunctionArg::ExprNamed { name: Expr::Identifier(name), arg: FunctionArgExpr::Expr(e), .. } => {
                (name.value.to_lowercase(), e)
            }
            other => {
                return Err(SqlError::InvalidParameter(format!("{SCHEMA}.{function}: unexpected argument {other}")));
            }
        };
        if !params.contains(&name.as_str()) {
            return Err(SqlError::InvalidParameter(format!(
                "{SCHEMA}.{function} has no parameter \"{name}\"; it takes {}",
                params.join(", ")
            )));
        }
        if out.iter().any(|(k, _)| *k == name) {
            return Err(SqlError::InvalidParameter(format!("{SCHEMA}.{function}: \"{name}\" is given twice")));
        }
        out.push((name, literal(function, value)?));
    }
    Ok(out)
}

/// A literal argument as text; `None` for NULL.
fn literal(function: &str, expr: &Expr) -> Result<Option<String>, SqlError> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::DollarQuotedString(datafusion::sql::sqlparser::ast::DollarQuotedString { value: s, .. }) => {
                Ok(Some(s.clone()))
            }
            Value::Number(n, _) => Ok(Some(n.clone())),
            Value::Boolean(b) => Ok(Some(b.to_string())),
            Value::Null => Ok(None),
            other => Err(SqlError::InvalidParameter(format!("{SCHEMA}.{function}: unexpected value {other}"))),
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => Ok(literal(function, expr)?.map(|v| format!("-{v}"))),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => literal(function, expr),
        other => {
            Err(SqlError::InvalidParameter(format!("{SCHEMA}.{function} takes literal values; \"{other}\" is not one")))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::parse_sql;
    use crate::sql::statement::Statement;

    fn call(sql: &str) -> super::KafkaCall {
        match parse_sql(sql).unwrap().pop().unwrap() {
            Statement::Kafka(c) => c,
            other => panic!("not a kafka call: {other:?}"),
        }
    }

    #[test]
    fn named_arguments_in_both_spellings() {
        let c =
            call("SELECT pipeline_kafka.consume_begin('logs', 'logs_stream', format := 'json', start_offset => -2)");
        assert_eq!(c.function, "consume_begin");
        let args: Vec<(&str, Option<&str>)> = c.args.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        assert_eq!(
            args,
            vec![
                ("topic", Some("logs")),
                ("relation", Some("logs_stream")),
                ("format", Some("json")),
                ("start_offset", Some("-2"))
            ]
        );
        let c = call("select pipeline_kafka.consume_begin('t', 's', start_offset := NULL)");
        assert_eq!(c.args[2], ("start_offset".to_string(), None));
        assert!(call("SELECT pipeline_kafka.consume_end()").args.is_empty());
    }

    #[test]
    fn bad_calls_are_errors() {
        assert!(parse_sql("SELECT pipeline_kafka.consume_begin('t', 's', colour := 'red')").is_err());
        assert!(parse_sql("SELECT pipeline_kafka.nope()").is_err());
        assert!(parse_sql("SELECT pipeline_kafka.add_broker(upper('x'))").is_err());
    }
}
