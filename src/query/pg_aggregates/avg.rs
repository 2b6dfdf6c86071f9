//! `avg` with a `numeric` result over integers and numerics, as
//! PostgreSQL's: 16 digits after the point (more if the argument has more),
//! rounded half away from zero. DataFusion's decimal average truncates and
//! overflows once the sum, scaled to the result, passes 38 digits; Eddy keeps
//! an exact count and sum, in the same partial state as DataFusion's, and
//! divides them itself.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Decimal128Array};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Decimal256Type, Field, FieldRef, UInt64Type, i256};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::functions_aggregate::average::Avg;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, ReversedUDAF, Signature, Volatility,
};

use super::{WIDE_INTEGER, one_type};

/// Digits after the point in `avg`'s result, PostgreSQL's minimum.
const AVG_SCALE: i8 = 16;

/// `avg`, with a `numeric` result over integers and numerics.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct PgAvg {
    inner: Avg,
    signature: Signature,
    aliases: Vec<String>,
}

impl Default for PgAvg {
    fn default() -> Self {
        Self {
            inner: Avg::new(),
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec!["mean".to_string()],
        }
    }
}

/// The result scale for a decimal argument of scale `scale`, if the
/// argument is a decimal.
fn avg_scale(arg: &DataType) -> Option<i8> {
    match arg {
        DataType::Decimal128(_, s) => Some((*s).max(AVG_SCALE)),
        _ => None,
    }
}

impl PgAvg {
    /// The arguments DataFusion's own avg is built with: its own result type,
    /// since Eddy evaluates the decimal result itself.
    fn inner_args<'a>(&self, args: &AccumulatorArgs<'a>) -> Result<AccumulatorArgs<'a>> {
        let arg_types: Vec<DataType> = args.expr_fields.iter().map(|f| f.data_type().clone()).collect();
        let inner_type = self.inner.return_type(&arg_types)?;
        let mut inner = args.clone();
        inner.return_field = Arc::new(Field::new(args.return_field.name(), inner_type, true));
        Ok(inner)
    }
}

impl AggregateUDFImpl for PgAvg {
    fn name(&self) -> &str {
        "avg"
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        one_type("avg", arg_types, WIDE_INTEGER)
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first().and_then(avg_scale) {
            Some(scale) => Ok(DataType::Decimal128(38, scale)),
            None => self.inner.return_type(arg_types),
        }
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let Some(division) = Division::for_args(&args) else {
            return self.inner.accumulator(args);
        };
        if args.is_distinct {
            let inner = self.inner.accumulator(self.inner_args(&args)?)?;
            return Ok(Box::new(DistinctAvg { inner, division }));
        }
        let state = self.inner.state_fields(StateFieldsArgs {
            name: args.name,
            input_fields: args.expr_fields,
            return_field: args.return_field.clone(),
            ordering_fields: &[],
            is_distinct: false,
        })?;
        let wide_state = state.get(1).is_some_and(|f| matches!(f.data_type(), DataType::Decimal256(..)));
        Ok(Box::new(DecimalAvg { count: 0, sum: 0, division, wide_state }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner_args(&args).is_ok_and(|inner| self.inner.groups_accumulator_supported(inner))
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let inner = self.inner.create_groups_accumulator(self.inner_args(&args)?)?;
        match Division::for_args(&args) {
            Some(division) => Ok(Box::new(PgAvgGroups { inner, division })),
            None => Ok(inner),
        }
    }
    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
}

fn overflow() -> DataFusionError {
    DataFusionError::Execution("numeric field overflow".into())
}

/// A decimal sum column as i128 values: DataFusion sums a 38-digit
/// argument as a Decimal256, whose sums past i128 are an overflow.
fn wide_sums(sums: &ArrayRef) -> Result<Decimal128Array> {
    if let Some(narrow) = sums.as_primitive_opt::<Decimal128Type>() {
        return Ok(narrow.clone());
    }
    let wide = sums
        .as_primitive_opt::<Decimal256Type>()
        .ok_or_else(|| DataFusionError::Internal(format!("avg sums {}", sums.data_type())))?;
    wide.iter().map(|v| v.map(|v| v.to_i128().ok_or_else(overflow)).transpose()).collect()
}

/// Dividing an exact decimal sum by a count into `avg`'s result.
#[derive(Debug, Clone, Copy)]
struct Division {
    /// Scale of the sum (the argument's).
    sum_scale: i8,
    /// Scale of the result.
    scale: i8,
}

impl Division {
    fn for_args(args: &AccumulatorArgs) -> Option<Division> {
        let sum_scale = match args.expr_fields.first()?.data_type() {
            DataType::Decimal128(_, s) => *s,
            _ => return None,
        };
        let scale = avg_scale(args.return_type())?;
        Some(Division { sum_scale, scale })
    }

    /// `sum / count` at the result's scale, rounded half away from zero.
    fn divide(&self, sum: i128, count: u64) -> Result<Option<i128>> {
        if count == 0 {
            return Ok(None);
        }
        let count = i128::from(count);
        let shift = u32::try_from(self.scale - self.sum_scale).map_err(|_| overflow())?;
        let multiplier = 10i128.checked_pow(shift).ok_or_else(overflow)?;
        let whole = (sum / count).checked_mul(multiplier).ok_or_else(overflow)?;
        // |sum % count| < count < 2^64, and the multiplier is at most 10^16,
        // so the product fits.
        let scaled = (sum % count).checked_mul(multiplier).ok_or_else(overflow)?;
        let mut fraction = scaled / count;
        if 2 * (scaled % count).abs() >= count {
            fraction += scaled.signum();
        }
        let value = whole.checked_add(fraction).ok_or_else(overflow)?;
        if value.unsigned_abs() >= 10u128.pow(38) {
            return Err(overflow());
        }
        Ok(Some(value))
    }

    fn scalar(&self, value: Option<i128>) -> ScalarValue {
        ScalarValue::Decimal128(value, 38, self.scale)
    }
}

/// avg's count and exact sum, as DataFusion's partial state holds them.
#[derive(Debug)]
struct DecimalAvg {
    count: u64,
    sum: i128,
    division: Division,
    /// Whether the partial state's sum is a Decimal256 (a 38-digit argument).
    wide_state: bool,
}

fn decimals(values: &[ArrayRef]) -> Result<&Decimal128Array> {
    values
        .first()
        .and_then(|v| v.as_primitive_opt::<Decimal128Type>())
        .ok_or_else(|| DataFusionError::Internal("avg was not given a decimal column".into()))
}

/// `sum` plus every non-NULL value, or numeric overflow.
fn add_all(sum: i128, values: &Decimal128Array) -> Result<i128> {
    values.iter().flatten().try_fold(sum, |sum, v| sum.checked_add(v).ok_or_else(overflow))
}

impl Accumulator for DecimalAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = decimals(values)?;
        self.count += (values.len() - values.null_count()) as u64;
        self.sum = add_all(self.sum, values)?;
        Ok(())
    }
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = decimals(values)?;
        let removed = (values.len() - values.null_count()) as u64;
        self.count = self
            .count
            .checked_sub(removed)
            .ok_or_else(|| DataFusionError::Internal("avg was asked to remove rows it does not hold".into()))?;
        for v in values.iter().flatten() {
            self.sum = self.sum.checked_sub(v).ok_or_else(overflow)?;
        }
        Ok(())
    }
    fn supports_retract_batch(&self) -> bool {
        true
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (Some(counts), Some(sums)) =
            (states.first().and_then(|a| a.as_primitive_opt::<UInt64Type>()), states.get(1))
        else {
            return Err(DataFusionError::Internal("unexpected avg partial state".into()));
        };
        self.count += counts.iter().flatten().sum::<u64>();
        self.sum = add_all(self.sum, &wide_sums(sums)?)?;
        Ok(())
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let scale = self.division.sum_scale;
        let sum = match self.wide_state {
            true => ScalarValue::Decimal256(Some(i256::from_i128(self.sum)), 76, scale),
            false => ScalarValue::Decimal128(Some(self.sum), 38, scale),
        };
        Ok(vec![ScalarValue::UInt64(Some(self.count)), sum])
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.division.scalar(self.division.divide(self.sum, self.count)?))
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// `avg(DISTINCT ...)`: DataFusion's set of distinct values, with Eddy's
/// division.
#[derive(Debug)]
struct DistinctAvg {
    inner: Box<dyn Accumulator>,
    division: Division,
}

impl DistinctAvg {
    /// The count and exact sum of the distinct values.
    fn count_and_sum(&mut self) -> Result<(u64, i128)> {
        let values = match self.inner.state()?.first() {
            Some(ScalarValue::List(list)) if !list.is_empty() => list.value(0),
            Some(ScalarValue::List(_)) => return Ok((0, 0)),
            _ => return Err(DataFusionError::Internal("avg(DISTINCT) state is not a list".into())),
        };
        let sums = wide_sums(&values)?;
        Ok(((sums.len() - sums.null_count()) as u64, add_all(0, &sums)?))
    }
}

impl Accumulator for DistinctAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(values)
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (count, sum) = self.count_and_sum()?;
        Ok(self.division.scalar(self.division.divide(sum, count)?))
    }
    fn size(&self) -> usize {
        self.inner.size() + std::mem::size_of::<Self>()
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }
}

/// DataFusion's grouped avg state, with Eddy's division.
struct PgAvgGroups {
    inner: Box<dyn GroupsAccumulator>,
    division: Division,
}

impl GroupsAccumulator for PgAvgGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner.update_batch(values, group_indices, opt_filter, total_num_groups)
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let state = self.inner.state(emit_to)?;
        let (Some(counts), Some(sums)) = (state.first().and_then(|a| a.as_primitive_opt::<UInt64Type>()), state.get(1))
        else {
            return Err(DataFusionError::Internal("unexpected grouped avg state".into()));
        };
        let sums = wide_sums(sums)?;
        let values = counts
            .iter()
            .zip(sums.iter())
            .map(|(count, sum)| self.division.divide(sum.unwrap_or(0), count.unwrap_or(0)))
            .collect::<Result<Decimal128Array>>()?;
        Ok(Arc::new(values.with_precision_and_scale(38, self.division.scale)?))
    }
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }
    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.inner.merge_batch(values, group_indices, total_num_groups)
    }
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        self.inner.convert_to_state(values, opt_filter)
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avg(sum: i128, count: u64, sum_scale: i8) -> String {
        let division = Division { sum_scale, scale: sum_scale.max(AVG_SCALE) };
        division.scalar(division.divide(sum, count).unwrap()).to_string()
    }

    #[test]
    fn averages_round_as_postgresql_divides() {
        // PostgreSQL 15: SELECT avg(x) FROM (VALUES ...) t(x)
        assert_eq!(avg(3, 2, 0), "1.5000000000000000");
        assert_eq!(avg(5, 3, 0), "1.6666666666666667");
        assert_eq!(avg(4, 3, 0), "1.3333333333333333");
        assert_eq!(avg(-5, 3, 0), "-1.6666666666666667");
        assert_eq!(avg(1950, 4, 2), "4.8750000000000000");
        // Two rows of bigint's largest value: 2^64 - 2 summed exactly.
        let max = i128::from(i64::MAX);
        assert_eq!(avg(2 * max, 2, 0), "9223372036854775807.0000000000000000");
        assert_eq!(Division { sum_scale: 0, scale: 16 }.divide(1, 0).unwrap(), None);
    }

    #[test]
    fn removing_rows_never_added_is_an_error_not_a_panic() {
        use datafusion::arrow::array::Decimal128Array;
        let division = Division { sum_scale: 0, scale: 16 };
        let mut avg = DecimalAvg { count: 0, sum: 0, division, wide_state: false };
        let rows: ArrayRef = Arc::new(Decimal128Array::from(vec![Some(5)]).with_precision_and_scale(20, 0).unwrap());
        assert!(avg.retract_batch(std::slice::from_ref(&rows)).is_err());
        avg.update_batch(std::slice::from_ref(&rows)).unwrap();
        avg.update_batch(std::slice::from_ref(&rows)).unwrap();
        avg.retract_batch(&[rows]).unwrap();
        assert_eq!(avg.evaluate().unwrap().to_string(), "5.0000000000000000");
    }

    #[test]
    fn a_quotient_past_numeric_range_is_an_error() {
        let division = Division { sum_scale: 0, scale: 16 };
        assert!(division.divide(10i128.pow(30), 1).is_err());
    }
}
