//! `pg_typeof(any)`: the PostgreSQL name of its argument's type, as psql
//! and drivers' tests ask it (`SELECT pg_typeof(avg(x))`). The name is the
//! one Eddy's RowDescription uses, without a numeric's precision (as
//! PostgreSQL prints `numeric`).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::catalog::types::pg_type_name;

/// The `pg_typeof` UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgTypeof {
    signature: Signature,
}

impl Default for PgTypeof {
    fn default() -> Self {
        Self { signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable) }
    }
}

/// `pg_typeof` as a UDF.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgTypeof::default())
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(field) = args.arg_fields.first() else {
            return exec_err!("pg_typeof takes one argument");
        };
        let name = match field.data_type() {
            DataType::Null => "unknown".to_string(),
            _ => {
                let name = pg_type_name(field);
                match name.split_once('(') {
                    Some((base, _)) if base == "numeric" => base.to_string(),
                    _ => name,
                }
            }
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}
