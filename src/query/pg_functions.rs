//! The catalog functions drivers and dashboards call on connect that
//! datafusion-pg-catalog does not provide (its own are registered by
//! [`crate::pg_catalog::register`]): `obj_description`, `col_description`
//! and `shobj_description` (NULL: no comments), `pg_get_userbyid` (`eddy`,
//! replacing the crate's `postgres`), `pg_get_viewdef(name)`, which gives a
//! continuous view's query, and what psql's `\df` calls
//! (`pg_function_is_visible`, `pg_get_function_result`,
//! `pg_get_function_arguments`).
//!
//! `current_setting(name)` depends on the session, so it is not a function
//! here: [`inline_current_setting`] replaces each call with the session's
//! value before the statement is planned.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::sql::sqlparser::ast::{self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments};

use crate::catalog::Catalog;
use crate::server::Session;
use crate::sql::SqlError;

/// How a function computes its value from its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Body {
    /// The same value for every row.
    Constant(ScalarValue),
    /// A view's query by name (`pg_get_viewdef`).
    ViewDef,
    /// `json_build_object(key, value, ...)`, as JSON text.
    JsonBuildObject,
    /// `format(template, args...)` with `%s`, `%I`, `%L` and `%%`.
    Format,
    /// `to_regtype(name)`: the type's name, or NULL for no such type.
    ToRegtype,
    /// `to_regtype(name)` where it is compared with an oid (rewritten so by
    /// `crate::sql::pg_syntax`): the type's oid.
    ToRegtypeOid,
    /// `oids::regtype[]` (rewritten so by `crate::sql::pg_syntax`): the
    /// types' names.
    RegtypeNames,
}

/// One catalog function.
#[derive(Debug)]
struct PgFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    body: Body,
    catalog: Option<Arc<Catalog>>,
}

impl PartialEq for PgFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for PgFunction {}

impl std::hash::Hash for PgFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &self.body {
            Body::Constant(v) => Ok(ColumnarValue::Scalar(v.clone())),
            Body::JsonBuildObject => json_build_object(&args),
            Body::Format => format_text(&args),
            Body::ToRegtype => map_text(&args, 0, &DataType::Utf8, regtype),
            Body::RegtypeNames => regtype_names(&args),
            Body::ToRegtypeOid => {
                let names = map_text(&args, 0, &DataType::Utf8, |name| {
                    regtype(name).and_then(|t| type_oid(&t)).map(|oid| oid.to_string())
                })?;
                Ok(match names {
                    ColumnarValue::Scalar(v) => ColumnarValue::Scalar(v.cast_to(&DataType::Int32)?),
                    ColumnarValue::Array(a) => ColumnarValue::Array(cast(&a, &DataType::Int32)?),
                })
            }
            Body::ViewDef => {
                let catalog = self.catalog.clone();
                map_text(&args, 0, &DataType::Utf8, move |name| {
                    let name = name.trim_matches('"').to_lowercase();
                    catalog.as_ref().and_then(|c| c.view(&name).ok()).map(|v| format!(" {};", v.definition()))
                })
            }
        }
    }
}

/// The name PostgreSQL gives type `name` (any of its spellings, with `[]`
/// for an array), as `to_regtype` shows it; `None` for a type Eddy does not
/// have (`hstore`, say).
fn regtype(name: &str) -> Option<String> {
    let name = name.trim().to_lowercase();
    if let Some(element) = name.strip_suffix("[]") {
        return regtype(element).map(|t| format!("{t}[]"));
    }
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name).trim_matches('"');
    let spaced = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let canonical = match spaced.as_str() {
        "bool" | "boolean" => "boolean",
        "int2" | "smallint" => "smallint",
        "int4" | "int" | "integer" => "integer",
        "int8" | "bigint" => "bigint",
        "float4" | "real" => "real",
        "float8" | "double precision" => "double precision",
        "numeric" | "decimal" => "numeric",
        "varchar" | "character varying" => "character varying",
        "bpchar" | "char" | "character" => "character",
        "time" | "time without time zone" => "time without time zone",
        "timetz" | "time with time zone" => "time with time zone",
        "timestamp" | "timestamp without time zone" => "timestamp without time zone",
        "timestamptz" | "timestamp with time zone" => "timestamp with time zone",
        other @ ("text" | "bytea" | "date" | "interval" | "json" | "jsonb" | "uuid" | "oid" | "name" | "regclass"
        | "regtype" | "regproc" | "inet" | "void" | "record") => other,
        _ => return None,
    };
    Some(canonical.to_string())
}

/// The types Eddy has, by the name PostgreSQL gives them, with their oids.
const TYPE_OIDS: &[(&str, i32)] = &[
    ("boolean", 16),
    ("bytea", 17),
    ("name", 19),
    ("bigint", 20),
    ("smallint", 21),
    ("integer", 23),
    ("regproc", 24),
    ("text", 25),
    ("oid", 26),
    ("json", 114),
    ("real", 700),
    ("double precision", 701),
    ("inet", 869),
    ("character", 1042),
    ("character varying", 1043),
    ("date", 1082),
    ("time without time zone", 1083),
    ("timestamp without time zone", 1114),
    ("timestamp with time zone", 1184),
    ("interval", 1186),
    ("time with time zone", 1266),
    ("numeric", 1700),
    ("regclass", 2205),
    ("regtype", 2206),
    ("record", 2249),
    ("cstring", 2275),
    ("any", 2276),
    ("anyelement", 2283),
    ("void", 2278),
    ("trigger", 2279),
    ("uuid", 2950),
    ("jsonb", 3802),
];

/// Each array type's element oid and its own oid.
const ARRAY_OIDS: &[(i32, i32)] = &[
    (16, 1000),
    (17, 1001),
    (19, 1003),
    (20, 1016),
    (21, 1005),
    (23, 1007),
    (25, 1009),
    (26, 1028),
    (114, 199),
    (700, 1021),
    (701, 1022),
    (869, 1041),
    (1042, 1014),
    (1043, 1015),
    (1082, 1182),
    (1083, 1183),
    (1114, 1115),
    (1184, 1185),
    (1186, 1187),
    (1266, 1270),
    (1700, 1231),
    (2950, 2951),
    (3802, 3807),
];

/// The oid of the type PostgreSQL calls `canonical` (as [`regtype`] names
/// it), for the types Eddy has.
fn type_oid(canonical: &str) -> Option<i32> {
    if let Some(element) = canonical.strip_suffix("[]") {
        let element = type_oid(element)?;
        return ARRAY_OIDS.iter().find(|(e, _)| *e == element).map(|(_, a)| *a);
    }
    TYPE_OIDS.iter().find(|(name, _)| *name == canonical).map(|(_, oid)| *oid)
}

/// The name PostgreSQL shows for type `oid` (`oid::regtype::text`); the
/// number itself for a type Eddy does not know.
fn type_name(oid: i32) -> String {
    if let Some((name, _)) = TYPE_OIDS.iter().find(|(_, o)| *o == oid) {
        return name.to_string();
    }
    match ARRAY_OIDS.iter().find(|(_, a)| *a == oid) {
        Some((element, _)) => format!("{}[]", type_name(*element)),
        None => oid.to_string(),
    }
}

/// `regtype_names(oids)`: an oidvector (`23 25`) or oid array (`{23,25}`)
/// as the names of its types, what `oids::regtype[]::text[]` gives.
fn regtype_names(args: &ScalarFunctionArgs) -> Result<ColumnarValue> {
    let Some(arg) = args.args.first() else {
        return exec_err!("regtype_names takes one argument");
    };
    let text = cast(&arg.to_array(args.number_rows)?, &DataType::Utf8)?;
    let Some(text) = text.as_any().downcast_ref::<StringArray>() else {
        return exec_err!("regtype_names takes text");
    };
    let mut out = datafusion::arrow::array::ListBuilder::new(datafusion::arrow::array::StringBuilder::new());
    for value in text.iter() {
        match value {
            None => out.append(false),
            Some(v) => {
                let oids = v.split(|c: char| !c.is_ascii_digit()).filter(|t| !t.is_empty());
                for oid in oids {
                    out.values().append_value(oid.parse::<i32>().map_or_else(|_| oid.to_string(), type_name));
                }
                out.append(true);
            }
        }
    }
    shaped_like(std::slice::from_ref(arg), Arc::new(out.finish()))
}

/// Applies `f` to argument `index` (cast to `as_type`, then to text) row by row.
fn map_text(
    args: &ScalarFunctionArgs,
    index: usize,
    as_type: &DataType,
    f: impl Fn(&str) -> Option<String>,
) -> Result<ColumnarValue> {
    let Some(arg) = args.args.get(index) else {
        return exec_err!("missing argument");
    };
    let array = arg.to_array(args.number_rows)?;
    let typed = cast(&cast(&array, as_type)?, &DataType::Utf8)?;
    let Some(text) = typed.as_any().downcast_ref::<StringArray>() else {
        return exec_err!("argument is not text");
    };
    let out: StringArray = text.iter().map(|v| v.and_then(&f)).collect();
    shaped_like(std::slice::from_ref(arg), Arc::new(out))
}

/// `out` as a scalar when every argument was one, else as an array.
pub(super) fn shaped_like(args: &[ColumnarValue], out: ArrayRef) -> Result<ColumnarValue> {
    Ok(match args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        true => ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?),
        false => ColumnarValue::Array(out),
    })
}

/// `json_build_object`: one JSON object per row from alternating keys and
/// values; numbers and booleans stay JSON numbers and booleans.
fn json_build_object(args: &ScalarFunctionArgs) -> Result<ColumnarValue> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::DataType as T;
    if !args.args.len().is_multiple_of(2) {
        return exec_err!("json_build_object takes an even number of arguments: key, value, ...");
    }
    let arrays = args.args.iter().map(|a| a.to_array(args.number_rows)).collect::<Result<Vec<_>>>()?;
    let texts = arrays.iter().map(|a| cast(a, &DataType::Utf8)).collect::<Result<Vec<_>, _>>()?;
    let mut out = datafusion::arrow::array::StringBuilder::new();
    for row in 0..args.number_rows {
        let mut object = serde_json::Map::new();
        for pair in (0..arrays.len()).step_by(2) {
            let (key, value) = (texts[pair].as_string::<i32>(), texts[pair + 1].as_string::<i32>());
            let json = if value.is_null(row) {
                serde_json::Value::Null
            } else {
                let text = value.value(row);
                match arrays[pair + 1].data_type() {
                    T::Boolean
                    | T::Int8
                    | T::Int16
                    | T::Int32
                    | T::Int64
                    | T::UInt32
                    | T::UInt64
                    | T::Float32
                    | T::Float64 => {
                        serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.into()))
                    }
                    _ => serde_json::Value::String(text.to_string()),
                }
            };
            object.insert(key.value(row).to_string(), json);
        }
        out.append_value(serde_json::Value::Object(object).to_string());
    }
    shaped_like(&args.args, Arc::new(out.finish()))
}

/// PostgreSQL's `format`: `%s` the value as text (NULL as nothing), `%I` a
/// quoted identifier, `%L` a quoted literal (NULL as `NULL`), `%%` a `%`.
fn format_text(args: &ScalarFunctionArgs) -> Result<ColumnarValue> {
    use datafusion::arrow::array::AsArray;
    let texts = args
        .args
        .iter()
        .map(|a| Ok(cast(&a.to_array(args.number_rows)?, &DataType::Utf8)?))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let Some((template, values)) = texts.split_first() else {
        return exec_err!("format takes a template");
    };
    let mut out = datafusion::arrow::array::StringBuilder::new();
    for row in 0..args.number_rows {
        let template = template.as_string::<i32>();
        if template.is_null(row) {
            out.append_null();
            continue;
        }
        let value = |i: usize| {
            values.get(i).map(|a| a.as_string::<i32>()).and_then(|a| (!a.is_null(row)).then(|| a.value(row)))
        };
        let (mut text, mut next, mut chars) = (String::new(), 0, template.value(row).chars());
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            let conversion = chars.next();
            if conversion == Some('%') {
                text.push('%');
                continue;
            }
            let v = value(next);
            next += 1;
            match conversion {
                Some('s') => text.push_str(v.unwrap_or("")),
                Some('I') => text.push_str(&quote_ident(v.unwrap_or(""))),
                Some('L') => text.push_str(&v.map_or("NULL".into(), |v| quote(v, '\''))),
                other => return exec_err!("format: unsupported conversion %{}", other.unwrap_or(' ')),
            }
        }
        out.append_value(text);
    }
    shaped_like(&args.args, Arc::new(out.finish()))
}

/// An identifier as PostgreSQL writes it: quoted unless it is lower case
/// letters, digits and underscores, not starting with a digit.
pub(crate) fn quote_ident(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { s.to_string() } else { quote(s, '"') }
}

/// `s` in `q` quotes, with `q` doubled inside.
fn quote(s: &str, q: char) -> String {
    format!("{q}{}{q}", s.replace(q, &format!("{q}{q}")))
}

fn arities(counts: &[usize]) -> Signature {
    let variants =
        counts.iter().map(|&n| if n == 0 { TypeSignature::Nullary } else { TypeSignature::Any(n) }).collect();
    Signature::one_of(variants, Volatility::Stable)
}

fn function(name: &'static str, counts: &[usize], returns: DataType, body: Body) -> PgFunction {
    PgFunction { name, signature: arities(counts), returns, body, catalog: None }
}

/// Registers the catalog functions; `pg_get_viewdef` reads `catalog`.
pub fn register(state: &mut SessionState, catalog: Arc<Catalog>) -> Result<()> {
    let none = || Body::Constant(ScalarValue::Utf8(None));
    let yes = || Body::Constant(ScalarValue::Boolean(Some(true)));
    let mut functions = vec![
        // psql's \df: every function is visible; Eddy has no user-defined
        // functions, so the two descriptions are never read.
        function("pg_function_is_visible", &[1], DataType::Boolean, yes()),
        function("pg_get_function_result", &[1], DataType::Utf8, none()),
        function("pg_get_function_arguments", &[1], DataType::Utf8, none()),
        // SQLAlchemy's inspector: Eddy has no sequences, and every collation
        // is visible.
        function("pg_get_serial_sequence", &[2], DataType::Utf8, none()),
        function("pg_collation_is_visible", &[1], DataType::Boolean, yes()),
        function("obj_description", &[1, 2], DataType::Utf8, none()),
        function("col_description", &[2], DataType::Utf8, none()),
        function("shobj_description", &[2], DataType::Utf8, none()),
        function("pg_get_userbyid", &[1], DataType::Utf8, Body::Constant(ScalarValue::Utf8(Some("eddy".into())))),
        // SQLAlchemy's hstore probe with psycopg 3.
        function("to_regtype", &[1], DataType::Utf8, Body::ToRegtype),
        // psycopg 3's TypeInfo.fetch: `WHERE t.oid = to_regtype(%(name)s)`.
        function("to_regtype_oid", &[1], DataType::Int32, Body::ToRegtypeOid),
        // pgcli's function completions: `proargtypes::regtype[]::text[]`.
        function("regtype_names", &[1], DataType::new_list(DataType::Utf8, true), Body::RegtypeNames),
        // asyncpg's pool resets each connection with it; Eddy takes no
        // advisory locks, so there is none to release (void, shown empty).
        function(
            "pg_advisory_unlock_all",
            &[0],
            DataType::Utf8,
            Body::Constant(ScalarValue::Utf8(Some(String::new()))),
        ),
    ];
    functions.push(PgFunction {
        name: "format",
        signature: Signature::variadic_any(Volatility::Immutable),
        returns: DataType::Utf8,
        body: Body::Format,
        catalog: None,
    });
    functions.push(PgFunction {
        name: "json_build_object",
        signature: Signature::variadic_any(Volatility::Immutable),
        returns: DataType::Utf8,
        body: Body::JsonBuildObject,
        catalog: None,
    });
    let mut viewdef = function("pg_get_viewdef", &[1, 2], DataType::Utf8, Body::ViewDef);
    viewdef.catalog = Some(catalog);
    functions.push(viewdef);
    for f in functions {
        state.register_udf(Arc::new(ScalarUDF::new_from_impl(f)))?;
    }
    Ok(())
}

/// Replaces `current_setting('name' [, missing_ok])` with the session's
/// value, as a text literal (NULL for an unknown name with `missing_ok`).
pub fn inline_current_setting(stmt: &mut ast::Statement, session: &Session) -> Result<(), SqlError> {
    let mut error = None;
    let _ = ast::visit_expressions_mut(stmt, |expr| {
        let Expr::Function(f) = expr else {
            return ControlFlow::<()>::Continue(());
        };
        if !f.name.to_string().eq_ignore_ascii_case("current_setting")
            && !f.name.to_string().eq_ignore_ascii_case("pg_catalog.current_setting")
        {
            return ControlFlow::Continue(());
        }
        if let Some(name) = computed_name(&f.args) {
            *expr = every_setting(name, session);
            return ControlFlow::Continue(());
        }
        match setting_value(&f.args, session) {
            Ok(value) => *expr = Expr::value(value.map_or(ast::Value::Null, ast::Value::SingleQuotedString)),
            Err(e) => error = Some(e),
        }
        ControlFlow::Continue(())
    });
    error.map_or(Ok(()), Err)
}

/// The name argument of `current_setting` when it is computed (a bound
/// parameter, as SQLAlchemy sends it through psycopg 3) rather than a literal.
fn computed_name(args: &FunctionArguments) -> Option<Expr> {
    let FunctionArguments::List(list) = args else { return None };
    match list.args.first()? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(_))) => None,
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
        _ => None,
    }
}

/// `CASE lower(name) WHEN 'setting' THEN 'value' ... END` over every
/// setting of the session: a computed name's value once it is known (an
/// unknown name is NULL).
fn every_setting(name: Expr, session: &Session) -> Expr {
    let text = |s: String| Expr::value(ast::Value::SingleQuotedString(s));
    let conditions = session
        .settings()
        .into_iter()
        .map(|(setting, value)| ast::CaseWhen { condition: text(setting.to_lowercase()), result: text(value) })
        .collect();
    Expr::Case {
        case_token: ast::helpers::attached_token::AttachedToken::empty(),
        end_token: ast::helpers::attached_token::AttachedToken::empty(),
        operand: Some(Box::new(crate::pg_catalog::call("lower", vec![name]))),
        conditions,
        else_result: None,
    }
}

fn setting_value(args: &FunctionArguments, session: &Session) -> Result<Option<String>, SqlError> {
    let FunctionArguments::List(list) = args else {
        return Err(SqlError::InvalidParameter("current_setting takes a setting name".into()));
    };
    let literal = |arg: &FunctionArg| match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s.clone()),
            ast::Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        },
        _ => None,
    };
    let Some(name) = list.args.first().and_then(literal) else {
        return Err(SqlError::InvalidParameter("current_setting takes the setting name as a string literal".into()));
    };
    let missing_ok = list.args.get(1).and_then(literal).is_some_and(|v| v == "true");
    match session.setting(&name) {
        Some((_, value)) => Ok(Some(value)),
        None if missing_ok => Ok(None),
        None => Err(SqlError::UnknownSetting(name)),
    }
}
