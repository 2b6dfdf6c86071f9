//! CPU time from `/proc`: the whole process, and the server's threads alone.
//!
//! The server runs in this process on its own tokio runtime, whose threads
//! carry [`super::SERVER_THREAD`] as their name; the client runs on the main
//! thread. Summing the server threads' utime+stime gives the CPU the server
//! spent, which is the honest denominator for "rows per core".

use std::collections::HashMap;
use std::time::Duration;

/// Clock ticks per second in `/proc/*/stat` (USER_HZ: 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// utime+stime of the process and of each server thread, at one instant.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    process_ticks: u64,
    /// Thread id to ticks, for threads whose name starts with the prefix.
    thread_ticks: HashMap<u64, u64>,
}

/// CPU spent between two samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUsed {
    /// By every thread of the process, client included.
    pub process: Duration,
    /// By the server's runtime threads alone.
    pub server: Duration,
}

/// Samples the process, and the threads whose name starts with `prefix`.
/// Outside Linux every figure is zero.
pub fn sample(prefix: &str) -> CpuSample {
    let process_ticks =
        std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| parse_stat(&s)).map_or(0, |(_, ticks)| ticks);
    let mut thread_ticks = HashMap::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else {
                continue; // the thread ended
            };
            if let Some((name, ticks)) = parse_stat(&text)
                && name.starts_with(prefix)
            {
                thread_ticks.insert(tid, ticks);
            }
        }
    }
    CpuSample { process_ticks, thread_ticks }
}

impl CpuSample {
    /// The CPU spent since `earlier`. A server thread that ended in between
    /// is not counted, so the server figure is a lower bound; the tokio
    /// workers live for the whole run.
    pub fn since(&self, earlier: &CpuSample) -> CpuUsed {
        let server_ticks: u64 = self
            .thread_ticks
            .iter()
            .map(|(tid, &now)| now.saturating_sub(*earlier.thread_ticks.get(tid).unwrap_or(&0)))
            .sum();
        CpuUsed {
            process: ticks(self.process_ticks.saturating_sub(earlier.process_ticks)),
            server: ticks(server_ticks),
        }
    }
}

fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 1000 / TICKS_PER_SECOND)
}

/// The name (`comm`) and utime+stime of a `stat` file. The name may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    // After ") ": field 3 (state) is index 0, so utime (14) is 11, stime (15) 12.
    let mut fields = text.get(close + 2..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// Resident memory of the process, in MiB (0 outside Linux).
pub fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

#[cfg(test)]
mod tests {
    // No imports: cargo bench builds this module with cfg(test) but no harness.
    #[test]
    fn parses_a_name_with_spaces_and_parens() {
        let line = "42 (eddy (srv) 1) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(super::parse_stat(line), Some(("eddy (srv) 1".into(), 300)));
    }
}
