//! The results as Markdown tables, ready for `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::time::Duration;

use super::{IngestResult, Latency, Method, Report};

/// COPY into the view with this many keys must reach [`COPY_TARGET`].
const COPY_TARGET_KEYS: usize = 10_000;
/// Rows per second per core (per server CPU-second).
const COPY_TARGET: f64 = 1_000_000.0;
/// Point lookups with this many groups must meet [`LOOKUP_P99_TARGET`].
const LOOKUP_TARGET_GROUPS: i64 = 1_000_000;
const LOOKUP_P99_TARGET: Duration = Duration::from_millis(1);
/// Shown where a figure could not be measured.
const NA: &str = "n/a";

/// Renders every table and the verdict on each target.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    ingest_table(&mut out, &report.ingest);
    baseline_table(&mut out, &report.ingest);
    reads_table(&mut out, &report.reads);
    if let Some(cost) = &report.metrics {
        metrics_table(&mut out, cost);
    }
    targets(&mut out, report);
    out
}

fn ingest_table(out: &mut String, results: &[IngestResult]) {
    out.push_str("### Ingest\n\n");
    out.push_str("| method | keys | into | rows | wall s | rows/s | server CPU s | rows/s/core (rows per server CPU-s) | process CPU s | rows per process CPU-s | groups | RSS MiB |\n");
    out.push_str("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {} | {:.2} | {} | {:.2} | {} | {} | {} |",
            method_name(r.method),
            thousands(r.keys as f64),
            if r.with_view { "view" } else { "stream only (baseline)" },
            thousands(r.rows as f64),
            r.wall.as_secs_f64(),
            thousands(r.rows_per_second()),
            r.cpu.server.as_secs_f64(),
            r.rows_per_server_cpu_second().map_or(NA.into(), thousands),
            r.cpu.process.as_secs_f64(),
            r.rows_per_process_cpu_second().map_or(NA.into(), thousands),
            r.groups.map_or("-".into(), |g| thousands(g as f64)),
            r.rss_mib,
        );
    }
    out.push('\n');
}

fn metrics_table(out: &mut String, cost: &super::metrics_cost::MetricsCost) {
    use super::metrics_cost::MetricsCost;
    out.push_str("### What the metrics cost on ingest (COPY into the view, same run)\n\n");
    out.push_str("| keys | rounds | figures off: median rows/s | on: median rows/s | cost | on, /metrics scraped every second: median rows/s | cost | scrapes answered |\n");
    out.push_str("|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {:.1}% | {} | {:.1}% | {} |\n",
        thousands(cost.keys as f64),
        cost.off.len(),
        thousands(MetricsCost::median(&cost.off)),
        thousands(MetricsCost::median(&cost.on)),
        cost.cost_percent(&cost.on),
        thousands(MetricsCost::median(&cost.scraped)),
        cost.cost_percent(&cost.scraped),
        cost.scrapes,
    );
    let _ = writeln!(
        out,
        "Server CPU per row, medians: off {:.1} ns, on {:.1} ns, on and scraped {:.1} ns.\n",
        MetricsCost::median_cpu_ns(&cost.off),
        MetricsCost::median_cpu_ns(&cost.on),
        MetricsCost::median_cpu_ns(&cost.scraped),
    );
    let _ = writeln!(
        out,
        "Measured directly, the figures' work for one write of a {}-row COPY batch: {:.0} ns with them off, {:.0} ns on; \
         the difference is {:.4}% of the time the off rounds took per batch.\n",
        thousands(eddy::ingest::decode::BATCH_ROWS as f64),
        cost.per_batch_ns.0,
        cost.per_batch_ns.1,
        cost.direct_percent(),
    );
}

fn baseline_table(out: &mut String, results: &[IngestResult]) {
    out.push_str("### The view's cost against the baseline (same data, same run)\n\n");
    out.push_str("| method | keys | baseline rows/s | view rows/s | view/baseline | baseline server CPU ns/row | view server CPU ns/row | view's own CPU ns/row |\n");
    out.push_str("|---|--:|--:|--:|--:|--:|--:|--:|\n");
    for view in results.iter().filter(|r| r.with_view) {
        let Some(base) = results.iter().find(|b| !b.with_view && b.method == view.method && b.keys == view.keys) else {
            continue;
        };
        let ns = |r: &IngestResult| r.server_ns_per_row();
        let own = ns(view).zip(ns(base)).map(|(v, b)| v - b);
        let show = |ns: Option<f64>| ns.map_or(NA.into(), |n| format!("{n:.0}"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} |",
            method_name(view.method),
            thousands(view.keys as f64),
            thousands(base.rows_per_second()),
            thousands(view.rows_per_second()),
            view.rows_per_second() / base.rows_per_second().max(1e-9),
            show(ns(base)),
            show(ns(view)),
            show(own),
        );
    }
    out.push('\n');
}

fn reads_table(out: &mut String, reads: &[Latency]) {
    out.push_str("### Reads over pgwire (prepared statements, one client)\n\n");
    out.push_str("| query | groups | calls | rows/call | p50 ms | p99 ms | max ms |\n");
    out.push_str("|---|--:|--:|--:|--:|--:|--:|\n");
    for l in reads {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {:.3} | {:.3} | {:.3} |",
            l.query,
            thousands(l.groups as f64),
            l.calls,
            thousands(l.rows_per_call as f64),
            ms(l.p50),
            ms(l.p99),
            ms(l.max),
        );
    }
    out.push('\n');
}

fn targets(out: &mut String, report: &Report) {
    out.push_str("### Targets\n\n");
    let copy = report.ingest.iter().find(|r| r.method == Method::Copy && r.with_view && r.keys == COPY_TARGET_KEYS);
    match copy {
        Some(r) => {
            let per_core = r.rows_per_server_cpu_second().unwrap_or(0.0);
            let _ = writeln!(
                out,
                "- COPY, {} keys: {} rows/s/core against a target of {}: {}",
                thousands(r.keys as f64),
                thousands(per_core),
                thousands(COPY_TARGET),
                verdict(per_core >= COPY_TARGET, COPY_TARGET / per_core.max(1e-9)),
            );
        }
        None => out.push_str("- COPY target: not measured in this plan\n"),
    }
    let lookup = report.reads.iter().find(|l| l.rows_per_call == 1 && l.groups == LOOKUP_TARGET_GROUPS);
    match lookup {
        Some(l) => {
            let _ = writeln!(
                out,
                "- point lookup, {} groups: p99 {:.3} ms against a target of {:.3} ms: {}",
                thousands(l.groups as f64),
                ms(l.p99),
                ms(LOOKUP_P99_TARGET),
                verdict(l.p99 < LOOKUP_P99_TARGET, l.p99.as_secs_f64() / LOOKUP_P99_TARGET.as_secs_f64()),
            );
        }
        None => out.push_str("- point-lookup target: not measured in this plan\n"),
    }
}

fn verdict(met: bool, factor: f64) -> String {
    if met { "met".into() } else { format!("MISSED by {factor:.1}x") }
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Copy => "COPY",
        Method::Insert => "INSERT",
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `1234567.8` as `1,234,568`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    // No imports: cargo bench builds this module with cfg(test) but no harness.
    #[test]
    fn thousands_groups_digits() {
        assert_eq!(super::thousands(0.0), "0");
        assert_eq!(super::thousands(999.0), "999");
        assert_eq!(super::thousands(1_234_567.4), "1,234,567");
    }
}
