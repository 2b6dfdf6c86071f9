//! Window syntax, rewritten into plain SQL before a view is planned.
//!
//! - `FROM tumble(s, ts, size)` becomes a subquery over `s` that adds
//!   `window_start = date_bin(size, ts)` and `window_end = window_start + size`.
//! - `FROM hop(s, ts, slide, size)` puts each event in every window that
//!   holds it: the subquery unnests the `ceil(size / slide)` candidate window
//!   starts and keeps those whose window contains `ts`.
//! - ksqlDB's `WINDOW TUMBLING (SIZE ...)` and `WINDOW HOPPING (SIZE ...,
//!   ADVANCE BY ...)` clauses are turned into these table functions at the
//!   token level ([`ksql_window_tokens`]); the window's bounds join the
//!   GROUP BY and the select list, and `WINDOWSTART`/`WINDOWEND` name them.
//! - A sliding window, from `WITH (sw = ...)` or PipelineDB's
//!   `WHERE arrival_timestamp > clock_timestamp() - interval '...'`, adds a
//!   hidden last group key: the step each event falls in.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, Expr, FunctionArg, FunctionArgExpr, GroupByExpr, Ident, Query, SelectItem, SetExpr,
    TableFactor, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use super::{Sliding, ViewOptions, WindowError, interval_sql, parse_duration};
use crate::catalog::ARRIVAL_TIMESTAMP;

/// The name ksqlDB gives a stream's event time.
const ROWTIME: &str = "rowtime";

/// What the rewrite found out about a view's windows.
#[derive(Debug, Clone, Default)]
pub struct Windowing {
    /// The sliding window, whose step is the last group key.
    pub sliding: Option<Sliding>,
    /// The timestamp column the view's windows are computed on.
    pub time_column: Option<String>,
    /// The session window, whose session key is the last group key.
    pub session: Option<SessionWindow>,
}

/// Rewrites `query`'s window syntax into SQL DataFusion plans.
/// `event_time(stream)` is the stream's declared event-time column, if any.
pub fn rewrite_view(
    query: &Query,
    options: &ViewOptions,
    event_time: &dyn Fn(&str) -> Option<String>,
) -> Result<(Query, Windowing), WindowError> {
    let mut query = query.clone();
    let mut windowing = Windowing::default();
    let SetExpr::Select(select) = query.body.as_mut() else {
        if options.sliding.is_some() {
            return Err(WindowError::Unsupported("a sliding window needs a single SELECT, not a set operation".into()));
        }
        return Ok((query, windowing));
    };
    let from_where = take_sliding_predicate(&mut select.selection)?;
    windowing.sliding = match (&options.sliding, from_where) {
        (Some(_), Some(_)) => {
            return Err(WindowError::InvalidOption(
                "the view gives its sliding window twice, in WITH (sw = ...) and in WHERE; keep one".into(),
            ));
        }
        (Some(s), None) => Some(s.clone()),
        (None, Some((column, width))) => Some(Sliding::new(width, super::DEFAULT_STEP_FACTOR, &column)),
        (None, None) => None,
    };
    let mut ksql = false;
    for table in select.from.iter_mut() {
        if let Some(window) = window_table(&table.relation, event_time)? {
            table.relation = window.factor;
            ksql |= window.ksql && window.session_gap.is_none();
            if let Some(gap) = window.session_gap {
                windowing.session = Some(SessionWindow { gap, column: window.column.clone() });
            }
            windowing.time_column = Some(window.column);
        }
    }
    if ksql {
        add_window_bounds(select);
    }
    let nested = rewrite_nested_windows(&mut query, event_time)?;
    windowing.time_column = windowing.time_column.or(nested);
    let Some(select) = (match query.body.as_mut() {
        SetExpr::Select(select) => Some(select),
        _ => None,
    }) else {
        return Ok((query, windowing));
    };
    if let Some(session) = &windowing.session {
        if windowing.sliding.is_some() {
            return Err(WindowError::Unsupported("a view has either a session window or a sliding window".into()));
        }
        add_session_bounds(select, &session.column)?;
    }
    if let Some(sliding) = &windowing.sliding {
        let step = parse_expr(&format!("date_bin({}, {})", interval_sql(sliding.step), quoted(&sliding.column)))?;
        match &mut select.group_by {
            GroupByExpr::Expressions(exprs, _) => exprs.push(step),
            GroupByExpr::All(_) => {
                return Err(WindowError::Unsupported(
                    "GROUP BY ALL is not supported with a sliding window; list the grouping columns".into(),
                ));
            }
        }
        windowing.time_column = Some(sliding.column.clone());
    }
    Ok((query, windowing))
}

/// `tumble()` and `hop()` anywhere below the view's outermost FROM (in a
/// subquery, a CTE, a join's other side), rewritten as at the top; returns
/// the first one's time column. Session windows and ksqlDB's clause shape
/// the outermost SELECT, so they must be there.
fn rewrite_nested_windows(
    query: &mut Query,
    event_time: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, WindowError> {
    struct Nested<'a> {
        event_time: &'a dyn Fn(&str) -> Option<String>,
        column: Option<String>,
        error: Option<WindowError>,
    }
    impl ast::VisitorMut for Nested<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            match window_table(factor, self.event_time) {
                Ok(Some(window)) if window.ksql || window.session_gap.is_some() => {
                    self.error = Some(WindowError::Unsupported(
                        "session windows and ksqlDB's WINDOW clause must be in the view's outermost FROM, not in a subquery, a CTE or a join".into(),
                    ));
                    ControlFlow::Break(())
                }
                Ok(Some(window)) => {
                    *factor = window.factor;
                    self.column.get_or_insert(window.column);
                    ControlFlow::Continue(())
                }
                Ok(None) => ControlFlow::Continue(()),
                Err(e) => {
                    self.error = Some(e);
                    ControlFlow::Break(())
                }
            }
        }
    }
    let mut nested = Nested { event_time, column: None, error: None };
    let _ = ast::VisitMut::visit(query, &mut nested);
    match nested.error {
        Some(e) => Err(e),
        None => Ok(nested.column),
    }
}

/// Removes PipelineDB's `WHERE <ts> > clock_timestamp() - interval 'w'`
/// conjunct, returning the column and the width.
fn take_sliding_predicate(selection: &mut Option<Expr>) -> Result<Option<(String, i64)>, WindowError> {
    let Some(expr) = selection.take() else {
        return Ok(None);
    };
    let mut conjuncts = Vec::new();
    split_and(expr, &mut conjuncts);
    let mut found = None;
    let mut kept = Vec::new();
    for c in conjuncts {
        match (found.is_none(), sliding_predicate(&c)?) {
            (true, Some(window)) => found = Some(window),
            _ => kept.push(c),
        }
    }
    *selection = kept.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    });
    Ok(found)
}

fn split_and(expr: Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: BinaryOperator::And, .. }) => {
            split_and(*inner, out)
        }
        other => out.push(other),
    }
}

/// `col > now() - interval` (or `>=`, or written the other way round).
fn sliding_predicate(expr: &Expr) -> Result<Option<(String, i64)>, WindowError> {
    let Expr::BinaryOp { left, op, right } = expr else {
        return Ok(None);
    };
    let (column, bound) = match op {
        BinaryOperator::Gt | BinaryOperator::GtEq => (left.as_ref(), right.as_ref()),
        BinaryOperator::Lt | BinaryOperator::LtEq => (right.as_ref(), left.as_ref()),
        _ => return Ok(None),
    };
    let Some(column) = column_name(column) else {
        return Ok(None);
    };
    let Expr::BinaryOp { left: clock, op: BinaryOperator::Minus, right: width } = strip_nested(bound) else {
        return Ok(None);
    };
    if !is_clock(clock) {
        return Ok(None);
    }
    match interval_text(width) {
        Some(text) => Ok(Some((column, parse_duration("sliding window", &text)?))),
        None => Ok(None),
    }
}

fn strip_nested(expr: &Expr) -> &Expr {
    match expr {
        Expr::Nested(inner) => strip_nested(inner),
        other => other,
    }
}

fn column_name(expr: &Expr) -> Option<String> {
    match strip_nested(expr) {
        Expr::Identifier(id) => Some(crate::sql::normalize_ident(id)),
        Expr::CompoundIdentifier(parts) => parts.last().map(crate::sql::normalize_ident),
        _ => None,
    }
}

fn is_clock(expr: &Expr) -> bool {
    match strip_nested(expr) {
        Expr::Function(f) => {
            let name = f.name.to_string().to_lowercase();
            ["now", "clock_timestamp", "current_timestamp", "statement_timestamp", "transaction_timestamp"]
                .contains(&name.as_str())
        }
        _ => false,
    }
}

/// The text of an interval literal: `interval '5 minutes'`, `INTERVAL '5' MINUTE`
/// or `'5 minutes'::interval`.
fn interval_text(expr: &Expr) -> Option<String> {
    match strip_nested(expr) {
        Expr::Interval(i) => {
            let value = string_value(&i.value)?;
            Some(match &i.leading_field {
                Some(field) => format!("{value} {field}"),
                None => value,
            })
        }
        Expr::Cast { expr, data_type: ast::DataType::Interval { .. }, .. } => string_value(expr),
        _ => None,
    }
}

fn string_value(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            Value::Number(n, _) => Some(n.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn interval_arg(function: &str, name: &str, arg: Option<&Expr>) -> Result<i64, WindowError> {
    let text = arg.and_then(interval_text).ok_or_else(|| {
        WindowError::InvalidOption(format!(
            "{function}()'s {name} must be an interval literal, such as INTERVAL '1 minute'"
        ))
    })?;
    parse_duration(name, &text)
}

/// A `tumble(...)`, `hop(...)` or ksqlDB window in FROM, as a subquery; with
/// the window's time column and whether it came from ksqlDB's clause.
fn window_table(
    factor: &TableFactor,
    event_time: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<WindowTable>, WindowError> {
    let TableFactor::Table { name, alias, args: Some(args), .. } = factor else {
        return Ok(None);
    };
    let function = name.to_string().to_lowercase();
    let (kind, ksql) = match function.as_str() {
        "tumble" | "hop" => (function.as_str(), false),
        "__ksql_tumble" => ("tumble", true),
        "__ksql_hop" => ("hop", true),
        "session" => ("session", false),
        "__ksql_session" => ("session", true),
        _ => return Ok(None),
    };
    let exprs: Vec<Option<&Expr>> = args
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    let (expected, usage) = match kind {
        "tumble" => (3, "tumble(stream, time_column, size)"),
        "session" => (3, "session(stream, time_column, gap)"),
        _ => (4, "hop(stream, time_column, slide, size)"),
    };
    if exprs.len() != expected || exprs.iter().any(Option::is_none) {
        return Err(WindowError::InvalidOption(format!("{kind}() takes {expected} arguments: {usage}")));
    }
    let stream = exprs[0]
        .and_then(column_name)
        .ok_or_else(|| WindowError::InvalidOption(format!("{kind}()'s first argument must name a stream")))?;
    let mut column = exprs[1].and_then(column_name).ok_or_else(|| {
        WindowError::InvalidOption(format!("{kind}()'s second argument must name a timestamp column"))
    })?;
    if column == ROWTIME {
        column = event_time(&stream).unwrap_or_else(|| ARRIVAL_TIMESTAMP.to_string());
    }
    let alias = alias.as_ref().map(|a| crate::sql::normalize_ident(&a.name)).unwrap_or_else(|| stream.clone());
    let ts = quoted(&column);
    let mut session_gap = None;
    let sql = if kind == "session" {
        session_gap = Some(interval_arg(kind, "gap", exprs[2])?);
        format!("(SELECT *, {ts} AS {SESSION_KEY} FROM {}) AS {}", quoted(&stream), quoted(&alias))
    } else if kind == "tumble" {
        let size = interval_sql(interval_arg(kind, "size", exprs[2])?);
        format!(
            "(SELECT *, date_bin({size}, {ts}) AS window_start, date_bin({size}, {ts}) + {size} AS window_end FROM {}) AS {}",
            quoted(&stream),
            quoted(&alias)
        )
    } else {
        let slide = interval_arg(kind, "slide", exprs[2])?;
        let size = interval_arg(kind, "size", exprs[3])?;
        if size < slide {
            return Err(WindowError::InvalidOption(
                "hop()'s size must be at least its slide; a window smaller than its slide would skip events".into(),
            ));
        }
        let windows = (size + slide - 1) / slide;
        if windows > 1_000 {
            return Err(WindowError::InvalidOption(format!(
                "hop() would put each event in {windows} windows; keep size / slide at 1000 or less"
            )));
        }
        let starts: Vec<String> = (0..windows)
            .map(|k| format!("date_bin({}, {ts}) - {}", interval_sql(slide), interval_sql(k * slide)))
            .collect();
        let size = interval_sql(size);
        format!(
            "(SELECT *, window_start + {size} AS window_end FROM \
             (SELECT *, unnest(make_array({})) AS window_start FROM {}) AS __hop \
             WHERE window_start + {size} > {ts}) AS {}",
            starts.join(", "),
            quoted(&stream),
            quoted(&alias)
        )
    };
    let mut parser = Parser::new(&PostgreSqlDialect {}).try_with_sql(&sql).map_err(internal)?;
    Ok(Some(WindowTable { factor: parser.parse_table_factor().map_err(internal)?, column, ksql, session_gap }))
}

/// A window function in FROM, rewritten.
struct WindowTable {
    /// The subquery replacing it.
    factor: TableFactor,
    /// The window's time column.
    column: String,
    /// From ksqlDB's clause.
    ksql: bool,
    /// A session window's gap.
    session_gap: Option<i64>,
}

/// The hidden group key of a session window: the event time, which the
/// view's operator replaces with the id of the session it falls in.
pub const SESSION_KEY: &str = "__eddy_session";

/// A session window: the gap and the time column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionWindow {
    /// Events further apart than this are in different sessions.
    pub gap: i64,
    /// The time column.
    pub column: String,
}

/// Session windows are the events' own extent: `window_start` is
/// `min(ts)` and `window_end` is `max(ts)`, both always selected (so the
/// session index can be rebuilt from the state), and the hidden session key
/// is grouped on.
fn add_session_bounds(select: &mut ast::Select, column: &str) -> Result<(), WindowError> {
    let bound = |name: &str| match name.to_lowercase().as_str() {
        "window_start" | "windowstart" => Some("min"),
        "window_end" | "windowend" => Some("max"),
        _ => None,
    };
    let aggregate = |f: &str| parse_expr(&format!("{f}({})", quoted(column)));
    if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        exprs.retain(|e| column_name(e).and_then(|n| bound(&n)).is_none());
        exprs.push(Expr::Identifier(Ident::new(SESSION_KEY)));
    }
    for item in select.projection.iter_mut() {
        if let SelectItem::UnnamedExpr(e) = item
            && let Some(name) = column_name(e).filter(|n| bound(n).is_some())
        {
            let canonical = if bound(&name) == Some("min") { "window_start" } else { "window_end" };
            *item = SelectItem::ExprWithAlias { expr: e.clone(), alias: Ident::new(canonical) };
        }
    }
    let mut failed = None;
    let _ = ast::visit_expressions_mut(&mut select.projection, |e| {
        if let Some(f) = column_name(e).and_then(|n| bound(&n))
            && matches!(e, Expr::Identifier(_))
        {
            match aggregate(f) {
                Ok(a) => *e = a,
                Err(err) => failed = Some(err),
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let has = |alias: &str| {
        select.projection.iter().any(|i| matches!(i, SelectItem::ExprWithAlias { alias: a, .. } if a.value == alias))
    };
    let mut front = Vec::new();
    for (alias, f) in [("window_start", "min"), ("window_end", "max")] {
        if !has(alias) {
            front.push(SelectItem::ExprWithAlias { expr: aggregate(f)?, alias: Ident::new(alias) });
        }
    }
    select.projection.splice(0..0, front);
    Ok(())
}

/// ksqlDB's windowed aggregate: `window_start` and `window_end` are grouped
/// on and selected, and `WINDOWSTART`/`WINDOWEND` name them.
fn add_window_bounds(select: &mut ast::Select) {
    let _ = ast::visit_expressions_mut(select, |e| {
        if let Expr::Identifier(id) = e {
            match id.value.to_lowercase().as_str() {
                "windowstart" => *id = Ident::new("window_start"),
                "windowend" => *id = Ident::new("window_end"),
                _ => {}
            }
        }
        ControlFlow::<()>::Continue(())
    });
    let bounds = ["window_start", "window_end"];
    if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        for (i, b) in bounds.iter().enumerate() {
            exprs.insert(i, Expr::Identifier(Ident::new(*b)));
        }
    }
    let selected = |name: &str| {
        select.projection.iter().any(|item| match item {
            SelectItem::UnnamedExpr(e) => column_name(e).as_deref() == Some(name),
            SelectItem::ExprWithAlias { alias, .. } => alias.value.eq_ignore_ascii_case(name),
            _ => false,
        })
    };
    let missing: Vec<&str> = bounds.iter().copied().filter(|b| !selected(b)).collect();
    for (i, b) in missing.into_iter().enumerate() {
        select.projection.insert(i, SelectItem::UnnamedExpr(Expr::Identifier(Ident::new(b))));
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn parse_expr(sql: &str) -> Result<Expr, WindowError> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).and_then(|mut p| p.parse_expr()).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> WindowError {
    WindowError::InvalidOption(format!("could not rewrite the window: {e}"))
}

/// ksqlDB's window clause, `FROM s [alias] WINDOW TUMBLING (SIZE 1 MINUTE)`,
/// becomes `FROM __ksql_tumble(s, rowtime, INTERVAL '...') [alias]`, and
/// `EMIT CHANGES` / `EMIT FINAL` are dropped. Other tokens are untouched.
pub fn ksql_window_tokens(tokens: Vec<TokenWithSpan>) -> Result<Vec<TokenWithSpan>, WindowError> {
    let word = |t: &TokenWithSpan, w: &str| matches!(&t.token, Token::Word(x) if x.value.eq_ignore_ascii_case(w));
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if word(&tokens[i], "emit") {
            let next = next_significant(&tokens, i + 1);
            if let Some(n) = next.filter(|&n| word(&tokens[n], "changes") || word(&tokens[n], "final")) {
                i = n + 1;
                continue;
            }
        }
        let kind = next_significant(&tokens, i + 1)
            .filter(|_| word(&tokens[i], "window"))
            .and_then(|n| ["tumbling", "hopping", "session"].into_iter().find(|k| word(&tokens[n], k)).map(|k| (k, n)));
        let Some((kind, at)) = kind else {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        };
        let open = next_significant(&tokens, at + 1).filter(|&n| tokens[n].token == Token::LParen);
        let open =
            open.ok_or_else(|| WindowError::InvalidOption(format!("WINDOW {kind} must be followed by (...)")))?;
        let close = (open..tokens.len())
            .find(|&n| tokens[n].token == Token::RParen)
            .ok_or_else(|| WindowError::InvalidOption(format!("WINDOW {kind} (...) is not closed")))?;
        let inner: Vec<String> = tokens[open + 1..close]
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .map(|t| t.token.to_string().to_lowercase())
            .collect();
        let args = ksql_window_args(kind, &inner)?;
        wrap_from_item(&mut out, kind, &args)?;
        i = close + 1;
    }
    Ok(out)
}

fn next_significant(tokens: &[TokenWithSpan], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&n| !matches!(tokens[n].token, Token::Whitespace(_)))
}

/// `SIZE 10 MINUTES, ADVANCE BY 1 MINUTE` as interval SQL arguments.
fn ksql_window_args(kind: &str, inner: &[String]) -> Result<Vec<String>, WindowError> {
    let usage = match kind {
        "tumbling" => "WINDOW TUMBLING (SIZE 1 MINUTE)",
        "hopping" => "WINDOW HOPPING (SIZE 10 MINUTES, ADVANCE BY 1 MINUTE)",
        _ => "WINDOW SESSION (5 MINUTES)",
    };
    let bad = || WindowError::InvalidOption(format!("could not read the window clause; write it as {usage}"));
    let duration = |parts: &[String]| -> Result<String, WindowError> {
        match parts {
            [n, unit] => Ok(interval_sql(parse_duration("window", &format!("{n} {unit}"))?)),
            _ => Err(bad()),
        }
    };
    let clauses: Vec<&[String]> = inner.split(|t| t == ",").collect();
    match (kind, clauses.as_slice()) {
        ("tumbling", [size]) if size.first().is_some_and(|w| w == "size") => Ok(vec![duration(&size[1..])?]),
        ("hopping", [size, advance])
            if size.first().is_some_and(|w| w == "size")
                && advance.len() > 2
                && advance[0] == "advance"
                && advance[1] == "by" =>
        {
            Ok(vec![duration(&advance[2..])?, duration(&size[1..])?])
        }
        ("session", [gap]) => Ok(vec![duration(gap)?]),
        _ => Err(bad()),
    }
}

/// Replaces the FROM item just emitted (`name`, `name alias` or
/// `name AS alias`) by the window function over it.
fn wrap_from_item(out: &mut Vec<TokenWithSpan>, kind: &str, args: &[String]) -> Result<(), WindowError> {
    let significant: Vec<usize> =
        (0..out.len()).rev().filter(|&n| !matches!(out[n].token, Token::Whitespace(_))).take(4).collect();
    let is_word = |n: usize, w: &str| matches!(&out[n].token, Token::Word(x) if x.value.eq_ignore_ascii_case(w));
    let from_at = significant.iter().position(|&n| is_word(n, "from")).ok_or_else(|| {
        WindowError::InvalidOption(
            "a WINDOW clause must follow the stream in FROM: FROM s WINDOW TUMBLING (...)".into(),
        )
    })?;
    if from_at == 0 {
        return Err(WindowError::InvalidOption("a WINDOW clause needs a stream before it".into()));
    }
    let name_at = significant[from_at - 1];
    let name = out[name_at].token.to_string();
    let rest: Vec<TokenWithSpan> = out.split_off(name_at + 1);
    out.pop();
    let function = match kind {
        "tumbling" => "__ksql_tumble",
        "hopping" => "__ksql_hop",
        _ => "__ksql_session",
    };
    let sql = format!("{function}({name}, {ROWTIME}, {})", args.join(", "));
    let tokens = datafusion::sql::sqlparser::tokenizer::Tokenizer::new(&PostgreSqlDialect {}, &sql)
        .tokenize_with_location()
        .map_err(internal)?;
    out.extend(tokens);
    out.extend(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str, options: &[(&str, &str)]) -> Result<(String, Windowing), WindowError> {
        let query = crate::sql::parser::parse_query(sql).unwrap();
        let options: Vec<(String, String)> = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (q, w) = rewrite_view(&query, &ViewOptions::parse(&options)?, &|_| None)?;
        Ok((q.to_string(), w))
    }

    #[test]
    fn pipelinedb_where_clause_becomes_a_sliding_window() {
        let (sql, w) = rewrite(
            "SELECT k, count(*) FROM s WHERE x > 1 AND arrival_timestamp > clock_timestamp() - interval '1 hour' GROUP BY k",
            &[],
        )
        .unwrap();
        let s = w.sliding.unwrap();
        assert_eq!((s.width, s.step), (3_600_000_000, 180_000_000));
        assert!(sql.contains("WHERE x > 1 GROUP BY k, date_bin(INTERVAL '180000000 microseconds'"), "{sql}");
        assert!(
            rewrite("SELECT count(*) FROM s WHERE arrival_timestamp > now() - interval '1 hour'", &[("sw", "1 hour")])
                .is_err()
        );
    }

    #[test]
    fn tumble_and_hop_become_subqueries() {
        let (sql, w) =
            rewrite("SELECT window_start, count(*) FROM tumble(s, ts, INTERVAL '1 minute') GROUP BY 1", &[]).unwrap();
        assert!(sql.contains("date_bin(INTERVAL '60000000 microseconds', \"ts\") AS window_start"), "{sql}");
        assert_eq!(w.time_column.as_deref(), Some("ts"));
        let (sql, _) = rewrite(
            "SELECT window_start, count(*) FROM hop(s, ts, INTERVAL '1 minute', INTERVAL '3 minutes') GROUP BY 1",
            &[],
        )
        .unwrap();
        assert!(sql.contains("unnest(make_array("), "{sql}");
        assert!(rewrite("SELECT count(*) FROM hop(s, ts, INTERVAL '2 minutes', INTERVAL '1 minute')", &[]).is_err());
        assert!(rewrite("SELECT count(*) FROM tumble(s, ts)", &[]).is_err());
    }

    #[test]
    fn ksql_window_clause() {
        let sql = "SELECT page, COUNT(*) FROM pageviews WINDOW HOPPING (SIZE 10 MINUTES, ADVANCE BY 1 MINUTE) GROUP BY page EMIT CHANGES";
        let tokens = datafusion::sql::sqlparser::tokenizer::Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize_with_location()
            .unwrap();
        let text: String = ksql_window_tokens(tokens).unwrap().iter().map(|t| t.token.to_string()).collect();
        assert_eq!(
            text,
            "SELECT page, COUNT(*) FROM __ksql_hop(pageviews, rowtime, INTERVAL '60000000 microseconds', INTERVAL '600000000 microseconds')  GROUP BY page "
        );
        let (sql, _) = rewrite(&text, &[]).unwrap();
        assert!(sql.starts_with("SELECT window_start, window_end, page, COUNT(*)"), "{sql}");
        assert!(sql.contains("GROUP BY window_start, window_end, page"), "{sql}");
    }
}
