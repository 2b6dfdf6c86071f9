//! jsonb's own functions and operators over Eddy's JSON text:
//! `jsonb_build_object` and `jsonb_build_array`, printed as PostgreSQL
//! prints jsonb (keys ordered by length then bytes, the last of a repeated
//! key kept, `": "` and `", "` between parts), and containment, `a @> b`
//! and `a <@ b`, which `sql::pg_syntax` turns into `jsonb_contains`.
//! Containment of two arrays (`ARRAY[1, 2] @> ARRAY[1]`) stays
//! DataFusion's `array_has_all`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

use crate::catalog::types::PG_TYPE_KEY;

/// Whether `a` contains `b`, by PostgreSQL's jsonb rules: an object holds
/// each of `b`'s keys with a value that contains `b`'s; an array holds,
/// for each of `b`'s elements, one that contains it (and a top-level array
/// contains a scalar it holds); scalars are equal (numbers by value).
pub fn contains(a: &Value, b: &Value, top: bool) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            b.iter().all(|(k, bv)| a.get(k).is_some_and(|av| contains(av, bv, false)))
        }
        (Value::Array(a), Value::Array(b)) => b.iter().all(|bv| a.iter().any(|av| contains(av, bv, false))),
        (Value::Array(a), scalar) if top && !scalar.is_object() => a.iter().any(|av| same_scalar(av, scalar)),
        (a, b) => same_scalar(a, b),
    }
}

fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => a == b,
    }
}

/// `value` as PostgreSQL prints a jsonb value.
pub fn jsonb_text(value: &Value) -> String {
    let mut out = String::new();
    write_jsonb(value, &mut out);
    out
}

fn write_jsonb(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes())));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write_jsonb(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_jsonb(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The JSON value of argument `array`'s row: numbers and booleans as
/// themselves, json values (a json column, a nested `jsonb_build_*`) as
/// JSON, text as strings, NULL as null.
fn value_of(array: &ArrayRef, field: Option<&FieldRef>, texts: &ArrayRef, row: usize) -> Value {
    if array.data_type() == &DataType::Null || array.is_null(row) {
        return Value::Null;
    }
    let text = texts.as_string::<i32>().value(row);
    let json = field.is_some_and(|f| f.metadata().contains_key(PG_TYPE_KEY));
    if json || array.data_type().is_numeric() || array.data_type() == &DataType::Boolean {
        return serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()));
    }
    Value::String(text.into())
}

/// Which builder a [`Build`] is.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Shape {
    Object,
    Array,
}

/// `jsonb_build_object` or `jsonb_build_array`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Build {
    shape: Shape,
    signature: Signature,
}

/// `jsonb_build_object(key, value, ...)`.
pub fn build_object_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Build { shape: Shape::Object, signature: Signature::variadic_any(Volatility::Immutable) })
}

/// `jsonb_build_array(value, ...)`.
pub fn build_array_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Build { shape: Shape::Array, signature: Signature::variadic_any(Volatility::Immutable) })
}

impl ScalarUDFImpl for Build {
    fn name(&self) -> &str {
        match self.shape {
            Shape::Object => "jsonb_build_object",
            Shape::Array => "jsonb_build_array",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    /// Text tagged as jsonb, so that clients see a jsonb column and an
    /// enclosing builder nests the value as JSON.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if self.shape == Shape::Object && !args.arg_fields.len().is_multiple_of(2) {
            return plan_err!(
                "argument list must have even number of elements; jsonb_build_object takes key, value, ..."
            );
        }
        let jsonb = std::collections::HashMap::from([(PG_TYPE_KEY.to_string(), "jsonb".to_string())]);
        Ok(Arc::new(Field::new(self.name(), DataType::Utf8, true).with_metadata(jsonb)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args.args.iter().map(|a| a.to_array(rows)).collect::<Result<Vec<_>>>()?;
        let texts = arrays.iter().map(|a| cast(a, &DataType::Utf8)).collect::<Result<Vec<_>, _>>()?;
        let mut out = StringBuilder::new();
        for row in 0..rows {
            let value = match self.shape {
                Shape::Array => Value::Array(
                    (0..arrays.len()).map(|i| value_of(&arrays[i], args.arg_fields.get(i), &texts[i], row)).collect(),
                ),
                Shape::Object => {
                    let mut object = serde_json::Map::new();
                    for pair in (0..arrays.len()).step_by(2) {
                        if arrays[pair].data_type() == &DataType::Null || arrays[pair].is_null(row) {
                            return exec_err!("argument {}: key must not be null", pair + 1);
                        }
                        let key = texts[pair].as_string::<i32>().value(row).to_string();
                        let value = value_of(&arrays[pair + 1], args.arg_fields.get(pair + 1), &texts[pair + 1], row);
                        object.insert(key, value);
                    }
                    Value::Object(object)
                }
            };
            out.append_value(jsonb_text(&value));
        }
        super::pg_functions::shaped_like(&args.args, Arc::new(out.finish()))
    }
}

/// `jsonb_contains(a, b)`: `a @> b`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Contains {
    signature: Signature,
    arrays: Arc<ScalarUDF>,
}

/// The `jsonb_contains` UDF.
pub fn contains_udf() -> ScalarUDF {
    let arrays = datafusion::functions_nested::array_has::array_has_all_udf();
    ScalarUDF::new_from_impl(Contains { signature: Signature::any(2, Volatility::Immutable), arrays })
}

fn is_list(t: &DataType) -> bool {
    matches!(t, DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..))
}

impl ScalarUDFImpl for Contains {
    fn name(&self) -> &str {
        "jsonb_contains"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let text =
            |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null);
        match args {
            [a, b] if (text(a) && text(b)) || (is_list(a) && is_list(b)) => Ok(DataType::Boolean),
            [a, b] => plan_err!("operator does not exist: {a} @> {b}; @> compares two jsonb values or two arrays"),
            _ => plan_err!("@> takes two operands"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [a, b] = args.args.as_slice() else {
            return exec_err!("jsonb_contains takes two arguments");
        };
        if is_list(&a.data_type()) {
            return self.arrays.invoke_with_args(args);
        }
        let (a_text, b_text) = (cast(&a.to_array(rows)?, &DataType::Utf8)?, cast(&b.to_array(rows)?, &DataType::Utf8)?);
        let (a_text, b_text) = (a_text.as_string::<i32>(), b_text.as_string::<i32>());
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if a_text.is_null(row) || b_text.is_null(row) {
                out.push(None);
                continue;
            }
            let parse = |t: &str| {
                serde_json::from_str::<Value>(t).or_else(|e| exec_err!("invalid input syntax for type json: {e}"))
            };
            let (left, right) = (parse(a_text.value(row))?, parse(b_text.value(row))?);
            out.push(Some(contains(&left, &right, true)));
        }
        super::pg_functions::shaped_like(&args.args, Arc::new(BooleanArray::from(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each answer is PostgreSQL 15's.
    #[test]
    fn containment_as_postgres() {
        let c = |a: Value, b: Value| contains(&a, &b, true);
        assert!(c(json!({"a": {"b": 1}, "c": [1, 2]}), json!({"a": {}})));
        assert!(c(json!({"a": 1, "b": 2}), json!({"a": 1})));
        assert!(!c(json!({"a": 1}), json!({"a": 1, "b": 2})));
        assert!(c(json!([1, 2, 3]), json!([3, 1])));
        assert!(c(json!([1, 2, 3]), json!([1, 1])));
        assert!(c(json!([1, 2]), json!(1)), "a top-level array contains a scalar it holds");
        assert!(!c(json!({"a": [1, 2]}), json!({"a": 1})), "only at the top level");
        assert!(c(json!(1), json!(1.0)));
        assert!(!c(json!([[1, 2]]), json!([1])));
        assert!(c(json!([[1, 2]]), json!([[1]])));
        assert!(c(json!("a"), json!("a")));
        assert!(!c(json!({"a": 1}), json!([])), "an object never contains an array");
        assert!(!c(json!(9007199254740993_i64), json!(9007199254740992_i64)), "integers compare exactly");
    }

    #[test]
    fn jsonb_prints_as_postgres() {
        let v: Value =
            serde_json::from_str(r#"{"bb": [1, "a", null], "a": {"z": true, "y": 1.5}, "ccc": "x"}"#).unwrap();
        assert_eq!(jsonb_text(&v), r#"{"a": {"y": 1.5, "z": true}, "bb": [1, "a", null], "ccc": "x"}"#);
    }
}
