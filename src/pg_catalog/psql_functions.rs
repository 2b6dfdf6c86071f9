//! Catalog functions psql's `+` meta-commands and `\dT` call, which the
//! catalog crate lacks: `pg_size_pretty(bigint)` (PostgreSQL's rounding),
//! `pg_table_size(oid)` and `pg_indexes_size(oid)` (NULL: Eddy's relations
//! have no pages on disk to count; `pipelinedb.views` has each view's
//! bytes), and `pg_type_is_visible(oid)` (true: every type is in
//! `pg_catalog`, which is on the search path).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// PostgreSQL's `pg_size_pretty`: bytes below 10 kB, then kB, MB, GB and TB,
/// each rounded half up from the next smaller unit.
pub fn size_pretty(bytes: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    const LIMIT2: i64 = LIMIT * 2 - 1;
    if bytes.abs() < LIMIT {
        return format!("{bytes} bytes");
    }
    // One extra bit is kept for rounding.
    let half_rounded = |v: i64| if v >= 0 { (v + 1) / 2 } else { (v - 1) / 2 };
    let mut size = bytes >> 9;
    for unit in ["kB", "MB", "GB"] {
        if size.abs() < LIMIT2 {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} TB", half_rounded(size))
}

/// The four functions, for registering.
pub fn udfs() -> Vec<ScalarUDF> {
    let pretty = Arc::new(|args: &[ColumnarValue]| {
        let args = ColumnarValue::values_to_arrays(args)?;
        let sizes = datafusion::arrow::compute::cast(&args[0], &DataType::Int64)?;
        let text: StringArray = sizes.as_primitive::<Int64Type>().iter().map(|v| v.map(size_pretty)).collect();
        Ok(ColumnarValue::Array(Arc::new(text) as ArrayRef))
    });
    let unknown_size = Arc::new(|args: &[ColumnarValue]| {
        let rows = ColumnarValue::values_to_arrays(args)?.first().map_or(1, |a| a.len());
        Ok(ColumnarValue::Array(Arc::new(Int64Array::new_null(rows)) as ArrayRef))
    });
    let visible = Arc::new(|args: &[ColumnarValue]| {
        let rows = ColumnarValue::values_to_arrays(args)?.first().map_or(1, |a| a.len());
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![true; rows])) as ArrayRef))
    });
    vec![
        create_udf("pg_size_pretty", vec![DataType::Int64], DataType::Utf8, Volatility::Immutable, pretty),
        create_udf("pg_table_size", vec![DataType::Int32], DataType::Int64, Volatility::Stable, unknown_size.clone()),
        create_udf("pg_indexes_size", vec![DataType::Int32], DataType::Int64, Volatility::Stable, unknown_size),
        create_udf("pg_type_is_visible", vec![DataType::Int32], DataType::Boolean, Volatility::Stable, visible),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_postgresql_prints_them() {
        // Each checked against PostgreSQL 15's pg_size_pretty.
        let cases = [
            (0, "0 bytes"),
            (10239, "10239 bytes"),
            (10240, "10 kB"),
            (20479, "20 kB"),
            (1_048_576, "1024 kB"),
            (10_485_760, "10 MB"),
            (123_456_789, "118 MB"),
            (-10240, "-10 kB"),
            (1_099_511_627_776, "1024 GB"),
            (10_995_116_277_760, "10 TB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(size_pretty(bytes), want, "{bytes}");
        }
    }
}
