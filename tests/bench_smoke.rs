//! Runs the ingest benchmark's quick plan (`benches/ingest`), so the
//! benchmark keeps compiling and working. It times nothing: it checks that
//! every case ran, and the benchmark itself checks every reply (row counts,
//! groups, lookups that find their key).

// The benchmark binary uses all of it; this test not all (`Plan::full`).
#[allow(dead_code)]
#[path = "../benches/ingest/workload/mod.rs"]
mod workload;

use workload::{Method, Plan};

#[test]
fn quick_benchmark_runs_every_case() {
    let plan = Plan::quick();
    let report = workload::run(&plan, |_| {}).expect("the quick benchmark runs");
    // COPY and INSERT, with and without the view, per key count.
    assert_eq!(report.ingest.len(), plan.key_counts.len() * 4);
    for r in &report.ingest {
        let rows_max = match r.method {
            Method::Copy => plan.copy_rows_max,
            Method::Insert => plan.insert_rows_max,
        };
        assert_eq!(r.rows, rows_max as u64, "{r:?}");
        assert_eq!(r.groups, r.with_view.then_some(r.keys as i64), "{r:?}");
    }
    // A point lookup and a full scan per key count.
    assert_eq!(report.reads.len(), plan.key_counts.len() * 2);
    let rendered = workload::report::render(&report);
    assert!(rendered.contains("| COPY | 1,000 | view |"), "{rendered}");
}
