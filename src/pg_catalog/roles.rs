//! `pg_roles`: the users who may connect, so that psql's `\du` and
//! drivers' role lookups see them. A user who may write is a superuser (Eddy
//! has no finer privileges); a `read_only` user has no attribute. Without
//! configured users (trust), the one role is `eddy`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::datasource::{MemTable, TableProvider};

/// A role: its name, and whether it may write.
pub type Role = (String, bool);

/// The roles of `users` (name, read-only), or `eddy` when there are none.
pub fn of_users(users: impl Iterator<Item = (String, bool)>) -> Vec<Role> {
    let roles: Vec<Role> = users.map(|(name, read_only)| (name, !read_only)).collect();
    if roles.is_empty() { vec![("eddy".to_string(), true)] } else { roles }
}

/// `pg_roles` with `schema` (the crate's columns), one row per role.
pub fn table(schema: SchemaRef, roles: &[Role]) -> Result<Arc<dyn TableProvider>> {
    let n = roles.len();
    let text = |values: Vec<String>| -> ArrayRef { Arc::new(datafusion::arrow::array::StringArray::from(values)) };
    let flags = |f: &dyn Fn(&Role) -> bool| -> ArrayRef {
        Arc::new(datafusion::arrow::array::BooleanArray::from(roles.iter().map(f).collect::<Vec<_>>()))
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column: ArrayRef = match field.name().as_str() {
                "rolname" => text(roles.iter().map(|r| r.0.clone()).collect()),
                "rolsuper" | "rolcreaterole" | "rolcreatedb" | "rolreplication" | "rolbypassrls" => {
                    flags(&|r: &Role| r.1)
                }
                "rolinherit" | "rolcanlogin" => flags(&|_: &Role| true),
                "rolconnlimit" => text(vec!["-1".to_string(); n]),
                "rolpassword" => text(vec!["********".to_string(); n]),
                "oid" => text((0..n).map(|i| (16384 + i).to_string()).collect()),
                _ => new_null_array(field.data_type(), n),
            };
            if column.data_type() == field.data_type() { Ok(column) } else { Ok(cast(&column, field.data_type())?) }
        })
        .collect::<Result<Vec<_>>>()?;
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
        schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn a_read_only_user_is_no_superuser_and_trust_has_eddy() {
        assert_eq!(of_users(std::iter::empty()), vec![("eddy".to_string(), true)]);
        let roles = of_users([("ann".to_string(), false), ("viewer".to_string(), true)].into_iter());
        assert_eq!(roles, vec![("ann".to_string(), true), ("viewer".to_string(), false)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("rolname", DataType::Utf8, false),
            Field::new("rolsuper", DataType::Boolean, false),
            Field::new("oid", DataType::Int32, false),
            Field::new("rolvaliduntil", DataType::Utf8, true),
        ]));
        assert!(table(schema, &roles).is_ok(), "text fills an int oid column by a cast");
    }
}
