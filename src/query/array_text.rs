//! Arrays to and from text as PostgreSQL writes them.
//!
//! Arrow's cast of text to a list does not read PostgreSQL's array text: it
//! kept quotes (`{a,"b c"}` gave the element `"b c"`) and read `NULL` as
//! the text `NULL`. Its cast of a list to text writes `[1, 2]`. An analyzer
//! rule, run after type coercion, puts `pg_array_in` under every cast of
//! text to a list (it reads [`crate::catalog::pg_array`]'s form into a list
//! of text, which Arrow then casts element by element) and replaces every
//! cast of a list to text by `pg_array_out` (`{1,2}`).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::catalog::pg_array;

/// The analyzer rule; see the module doc.
#[derive(Debug, Default)]
pub struct ArrayText;

impl AnalyzerRule for ArrayText {
    fn name(&self) -> &str {
        "eddy_array_text"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::analyzer::rewrite_expressions(plan, rewrite)
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

fn is_list(t: &DataType) -> bool {
    matches!(t, DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..))
}

fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let (inner, to) = match &expr {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => (expr, field.data_type()),
        _ => return Ok(Transformed::no(expr)),
    };
    let Ok(from) = inner.get_type(schema) else {
        return Ok(Transformed::no(expr));
    };
    if is_list(&from) && is_text(to) {
        let out = Expr::ScalarFunction(ScalarFunction::new_udf(ARRAY_OUT.clone(), vec![inner.as_ref().clone()]));
        return Ok(Transformed::yes(out));
    }
    let already = matches!(inner.as_ref(), Expr::ScalarFunction(f) if f.func.name() == "pg_array_in");
    if !is_text(&from) || !is_list(to) || already {
        return Ok(Transformed::no(expr));
    }
    let call =
        |inner: Box<Expr>| Box::new(Expr::ScalarFunction(ScalarFunction::new_udf(ARRAY_IN.clone(), vec![*inner])));
    Ok(Transformed::yes(match expr {
        Expr::Cast(c) => Expr::Cast(Cast { expr: call(c.expr), field: c.field }),
        Expr::TryCast(c) => Expr::TryCast(TryCast { expr: call(c.expr), field: c.field }),
        other => other,
    }))
}

static ARRAY_IN: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::from(ArrayIn::default())));
static ARRAY_OUT: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::from(ArrayOut::default())));

/// `pg_array_in`, for registering under its name.
pub fn array_in_udf() -> Arc<ScalarUDF> {
    ARRAY_IN.clone()
}

fn text_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

/// Reads texts as arrays of text elements.
pub fn array_in(texts: &dyn Array) -> Result<ListArray> {
    let texts = cast(texts, &DataType::Utf8)?;
    pg_array::parse_column(texts.as_string::<i32>()).map_err(|e| DataFusionError::External(Box::new(e)))
}

/// `pg_array_in(text)`: the elements of PostgreSQL's array text, as text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayIn {
    signature: Signature,
}

impl Default for ArrayIn {
    fn default() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ArrayIn {
    fn name(&self) -> &str {
        "pg_array_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(text_list())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        one_arg(args, "pg_array_in", |a| Ok(Arc::new(array_in(a)?)))
    }
}

/// `pg_array_out(list)`: PostgreSQL's text of an array.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayOut {
    signature: Signature,
}

impl Default for ArrayOut {
    fn default() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ArrayOut {
    fn name(&self) -> &str {
        "pg_array_out"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        one_arg(args, "pg_array_out", |a| Ok(Arc::new(array_out(a)?)))
    }
}

/// Writes lists as PostgreSQL's array text.
fn array_out(lists: &dyn Array) -> Result<StringArray> {
    Ok(pg_array::format_column(lists)?)
}

/// Runs `f` over the one argument, as a scalar if it came as one.
fn one_arg(args: ScalarFunctionArgs, name: &str, f: impl Fn(&dyn Array) -> Result<ArrayRef>) -> Result<ColumnarValue> {
    let Some(arg) = args.args.first() else {
        return Err(DataFusionError::Internal(format!("{name} takes one argument")));
    };
    let scalar = matches!(arg, ColumnarValue::Scalar(_));
    let out = f(arg.to_array(1)?.as_ref())?;
    Ok(match scalar {
        true => ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?),
        false => ColumnarValue::Array(out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_read_and_write_postgresql_text() -> Result<()> {
        let texts = StringArray::from(vec![Some(r#"{a,"b c",NULL}"#), None, Some("{}")]);
        let lists = array_in(&texts)?;
        assert_eq!(lists.value(0).as_string::<i32>().iter().collect::<Vec<_>>(), [Some("a"), Some("b c"), None]);
        assert!(lists.is_null(1));
        let back = array_out(&lists)?;
        assert_eq!(back.iter().collect::<Vec<_>>(), [Some(r#"{a,"b c",NULL}"#), None, Some("{}")]);
        let bad = array_in(&StringArray::from(vec!["{1,2"])).map(|_| ()).map_err(|e| e.to_string());
        assert!(bad.is_err_and(|e| e.contains("malformed array literal")));
        Ok(())
    }
}
