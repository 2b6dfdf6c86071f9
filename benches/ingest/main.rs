//! Ingest and read benchmark: `cargo bench --bench ingest`.
//!
//! Rows per second into a continuous view through COPY and multi-row
//! INSERT, against a baseline stream that feeds no view, with 10,000 and
//! 1,000,000 keys; then point-lookup and full-scan latency over pgwire.
//! The figures and their reading are in `docs/benchmarks.md`.
//!
//! `--quick` (or `EDDY_BENCH_QUICK=1`) runs a tiny plan in seconds. So does
//! any run without cargo bench's `--bench` flag, which is how
//! `cargo test --all-targets` runs this binary; `--full` forces the full plan.
//! To profile one case: `--keys=1000000 --method=copy` (or `insert`), and
//! `--lookups=N` for more point lookups.

mod workload;

use std::process::ExitCode;

use workload::{Method, Plan, report};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let quick_env = std::env::var("EDDY_BENCH_QUICK").is_ok_and(|v| v == "1");
    let quick = has("--quick") || quick_env || !(has("--bench") || has("--full"));
    let (mut plan, name) = match quick {
        true => (Plan::quick(), "quick"),
        false => (Plan::full(), "full"),
    };
    if let Err(e) = narrow(&mut plan, &args) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    println!("## Eddy ingest and read benchmark ({name} plan)\n");
    println!("{}\n", machine());
    let started = std::time::Instant::now();
    match workload::run(&plan, |step| eprintln!("[{:>6.1}s] {step}", started.elapsed().as_secs_f64())) {
        Ok(report) => {
            println!("{}", report::render(&report));
            eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Applies `--keys=N[,N...]`, `--method=copy|insert` and `--lookups=N`.
fn narrow(plan: &mut Plan, args: &[String]) -> Result<(), String> {
    for arg in args {
        if let Some(list) = arg.strip_prefix("--keys=") {
            plan.key_counts = list
                .split(',')
                .map(|k| k.parse().map_err(|_| format!("bad --keys value: {k}")))
                .collect::<Result<_, _>>()?;
        } else if let Some(n) = arg.strip_prefix("--lookups=") {
            plan.lookups = n.parse().map_err(|_| format!("bad --lookups value: {n}"))?;
        } else if let Some(method) = arg.strip_prefix("--method=") {
            plan.methods = match method {
                "copy" => vec![Method::Copy],
                "insert" => vec![Method::Insert],
                other => return Err(format!("bad --method value: {other} (copy or insert)")),
            };
        }
    }
    Ok(())
}

/// Cores, CPU model and build profile, for the record.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown", str::trim)
        .to_string();
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    format!("machine: {cores} cores, {model}; {profile} build")
}
