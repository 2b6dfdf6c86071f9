//! `sum` and `avg` with PostgreSQL's result types, in place of DataFusion's.
//!
//! - `sum(bigint)` is `numeric` and never wraps around: DataFusion's int8
//!   sum wraps silently past 2^63. The argument is widened to a 20-digit
//!   decimal, which DataFusion sums exactly (`sum(smallint|integer)` stays
//!   `bigint`, as in PostgreSQL).
//! - `avg` of integers and of `numeric` is `numeric` (`avg`), where
//!   DataFusion gives `double precision` (integers) or four more digits of
//!   scale (numeric).
//!
//! Both keep their names, their partial states and their retraction, so
//! views, sliding windows and checkpoints treat them as DataFusion's own.

mod avg;

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, ReversedUDAF, Signature, Volatility,
};

/// The decimal an integer argument is widened to: every int8 fits.
pub(super) const WIDE_INTEGER: DataType = DataType::Decimal128(20, 0);

/// The two aggregates, to register in place of DataFusion's.
pub fn udafs() -> [AggregateUDF; 2] {
    [AggregateUDF::from(PgSum::default()), AggregateUDF::from(avg::PgAvg::default())]
}

/// The argument types both take, widened as PostgreSQL widens them; `None`
/// for a type neither sums.
fn widened(arg: &DataType, small_ints_to: DataType) -> Option<DataType> {
    Some(match arg {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => small_ints_to,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => WIDE_INTEGER,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Null => DataType::Float64,
        DataType::Decimal128(..) | DataType::Duration(_) | DataType::Interval(_) => arg.clone(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => DataType::Decimal128(*p, *s),
        _ => return None,
    })
}

pub(super) fn one_type(name: &str, arg_types: &[DataType], small_ints_to: DataType) -> Result<Vec<DataType>> {
    match arg_types {
        [arg] => match widened(arg, small_ints_to) {
            Some(t) => Ok(vec![t]),
            None => plan_err!(
                "function {name}({}) does not exist",
                crate::catalog::types::pg_type_name(&Field::new("", arg.clone(), true))
            ),
        },
        _ => plan_err!("function {name} takes one argument, {} given", arg_types.len()),
    }
}

/// `sum`, with `sum(bigint)` exact as `numeric`.
///
/// A smallint or integer argument is not coerced to bigint but widened as it
/// is summed: DataFusion coerces a view's plan more than once, and a coerced
/// bigint would be coerced again, to numeric.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgSum {
    inner: Sum,
    signature: Signature,
}

impl Default for PgSum {
    fn default() -> Self {
        Self { inner: Sum::new(), signature: Signature::user_defined(Volatility::Immutable) }
    }
}

/// Whether `sum` widens this argument type to bigint itself.
fn small_int(t: &DataType) -> bool {
    matches!(t, DataType::Int8 | DataType::Int16 | DataType::Int32)
}

impl PgSum {
    /// Calls DataFusion's sum with a small integer argument described as
    /// the bigint it is widened to.
    fn with_inner<R>(&self, args: &AccumulatorArgs, make: impl FnOnce(AccumulatorArgs) -> Result<R>) -> Result<R> {
        match args.expr_fields.first() {
            Some(field) if small_int(field.data_type()) => {
                let wide = [Arc::new(field.as_ref().clone().with_data_type(DataType::Int64))];
                let mut inner = args.clone();
                inner.expr_fields = &wide;
                make(inner)
            }
            _ => make(args.clone()),
        }
    }

    fn widens(args: &AccumulatorArgs) -> bool {
        args.expr_fields.first().is_some_and(|f| small_int(f.data_type()))
    }
}

impl AggregateUDFImpl for PgSum {
    fn name(&self) -> &str {
        "sum"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] if small_int(t) => Ok(vec![t.clone()]),
            _ => one_type("sum", arg_types, DataType::Int64),
        }
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if small_int(t) => Ok(DataType::Int64),
            _ => self.inner.return_type(arg_types),
        }
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let inner = self.with_inner(&args, |a| self.inner.accumulator(a))?;
        Ok(if Self::widens(&args) { Box::new(Widened(inner)) } else { inner })
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        // `sum(DISTINCT)` keeps a list of the widened values.
        let wide: Vec<FieldRef> = args
            .input_fields
            .iter()
            .map(|f| match small_int(f.data_type()) {
                true => Arc::new(f.as_ref().clone().with_data_type(DataType::Int64)),
                false => f.clone(),
            })
            .collect();
        self.inner.state_fields(StateFieldsArgs { input_fields: &wide, ..args })
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.with_inner(&args, |a| Ok(self.inner.groups_accumulator_supported(a))).unwrap_or(false)
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let inner = self.with_inner(&args, |a| self.inner.create_groups_accumulator(a))?;
        Ok(if Self::widens(&args) { Box::new(Widened(inner)) } else { inner })
    }
    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let inner = self.with_inner(&args, |a| self.inner.create_sliding_accumulator(a))?;
        Ok(if Self::widens(&args) { Box::new(Widened(inner)) } else { inner })
    }
    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
}

/// An accumulator of bigints fed smallints or integers.
#[derive(Debug)]
struct Widened<A: ?Sized>(Box<A>);

fn widen(values: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    values.iter().map(|v| Ok(cast(v, &DataType::Int64)?)).collect()
}

impl Accumulator for Widened<dyn Accumulator> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.update_batch(&widen(values)?)
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.evaluate()
    }
    fn size(&self) -> usize {
        self.0.size()
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.state()
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.merge_batch(states)
    }
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.retract_batch(&widen(values)?)
    }
    fn supports_retract_batch(&self) -> bool {
        self.0.supports_retract_batch()
    }
}

impl GroupsAccumulator for Widened<dyn GroupsAccumulator> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.update_batch(&widen(values)?, group_indices, opt_filter, total_num_groups)
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.0.evaluate(emit_to)
    }
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.0.state(emit_to)
    }
    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.0.merge_batch(values, group_indices, total_num_groups)
    }
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        self.0.convert_to_state(&widen(values)?, opt_filter)
    }
    fn size(&self) -> usize {
        self.0.size()
    }
}
