//! What the benchmarks share: the quick/full switch, running one on a
//! tokio runtime and printing its report, and small measurements.

#![allow(dead_code)]

pub mod broker;
pub mod pg;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

/// A benchmark's result: errors are reported, and fail the run.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The smoke run: `--quick`, or any run that is not `cargo bench` (so
/// `cargo test --all-targets` runs the quick plan).
pub fn quick() -> bool {
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    has("--quick") || !(has("--bench") || has("--full"))
}

/// Runs `report` on a multi-threaded runtime and prints it; a failure is
/// printed with `name` and fails the process.
pub fn run_report(name: &str, report: impl Future<Output = BenchResult<String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(report) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name} benchmark failed: {e:?}");
            ExitCode::FAILURE
        }
    }
}

/// Resident memory of process `pid`, in bytes (0 where /proc is missing).
pub fn rss_bytes(pid: u32) -> i64 {
    status_bytes(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// A `kB` field of a `/proc/<pid>/status` file, in bytes.
fn status_bytes(path: &str, field: &str) -> i64 {
    let status = std::fs::read_to_string(path).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Starts a new peak-memory measurement for this process: Linux resets
/// `VmHWM` to the current resident size (`/proc/self/clear_refs`, 5).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory (`VmHWM`) of this process since it started or since
/// [`reset_peak_rss`], in bytes (0 where /proc is missing).
pub fn peak_rss_bytes() -> i64 {
    status_bytes("/proc/self/status", "VmHWM:")
}

/// A duration in milliseconds, one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A number with thousands separators, no decimals.
pub fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 && ch != '-' && !out.ends_with('-') {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
