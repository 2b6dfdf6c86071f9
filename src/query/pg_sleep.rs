//! `pg_sleep(seconds)`: waits, then returns PostgreSQL's empty `void`
//! text. It is an async function, so the wait holds no thread, and a
//! CancelRequest or `statement_timeout` ends it like any statement (57014).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// The longest wait one call may ask for, as PostgreSQL's own limit is
/// about a day's worth of its internal unit; longer is an error.
const MAX_SECONDS: f64 = 86_400.0;

/// PostgreSQL's `pg_sleep`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgSleep {
    signature: Signature,
}

/// The `pg_sleep` UDF.
pub fn udf() -> ScalarUDF {
    let sleep = PgSleep { signature: Signature::any(1, Volatility::Volatile) };
    AsyncScalarUDF::new(Arc::new(sleep)).into_scalar_udf()
}

impl ScalarUDFImpl for PgSleep {
    fn name(&self) -> &str {
        "pg_sleep"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [t] if t.is_numeric() || t == &DataType::Null => Ok(DataType::Utf8),
            _ => plan_err!("function pg_sleep takes seconds, as pg_sleep(0.5)"),
        }
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!("pg_sleep runs asynchronously")
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for PgSleep {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let Some(seconds) = args.args.first() else {
            return exec_err!("pg_sleep takes seconds");
        };
        let seconds = cast(&seconds.to_array(rows)?, &DataType::Float64)?;
        // Each row waits in turn, as PostgreSQL runs the call once per row.
        for s in seconds.as_primitive::<Float64Type>().iter().flatten() {
            if s > MAX_SECONDS {
                return exec_err!("pg_sleep({s}) is longer than a day; sleep in shorter steps");
            }
            if s > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(s)).await;
            }
        }
        Ok(match args.args.first() {
            Some(ColumnarValue::Scalar(_)) => ColumnarValue::Scalar(ScalarValue::Utf8(Some(String::new()))),
            _ => ColumnarValue::Array(Arc::new(StringArray::from(vec![""; rows]))),
        })
    }
}
