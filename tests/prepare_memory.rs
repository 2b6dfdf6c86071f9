//! Memory over many prepared statements on one connection: 100,000 cycles
//! of Parse, Bind, Execute and Close (what a driver with a statement cache
//! does as it evicts) leave the server's resident memory flat.
//!
//! The statement is a `SHOW`, which is not planned: what is kept per
//! statement (pgwire's statement and portal, the session's names) is the
//! same for every kind, and a DataFusion plan per cycle would make the run
//! take minutes in a debug build (about 5 ms a cycle). Statements that are
//! planned go through the same cycle 2,000 times in PHP's own way (Parse,
//! then SQL `DEALLOCATE`) in tests/clients.rs (pdo_transactions.php).

mod common;

use common::process::EddyProcess;
use common::raw::{Raw, cstr, error_code};

/// The server's resident memory, in kB.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `cycles` prepare-run-free cycles, sent `batch` at a time before a Sync.
async fn cycles(raw: &mut Raw, from: usize, cycles: usize, batch: usize) {
    let mut done = 0;
    while done < cycles {
        let n = batch.min(cycles - done);
        for i in from + done..from + done + n {
            let name = format!("s{i}");
            let mut parse = cstr(&name);
            parse.extend(cstr("SHOW application_name"));
            parse.extend_from_slice(&0i16.to_be_bytes());
            raw.send(b'P', &parse).await;
            let mut bind = cstr("");
            bind.extend(cstr(&name));
            bind.extend_from_slice(&0i16.to_be_bytes());
            bind.extend_from_slice(&0i16.to_be_bytes());
            bind.extend_from_slice(&0i16.to_be_bytes());
            raw.send(b'B', &bind).await;
            let mut execute = cstr("");
            execute.extend_from_slice(&0i32.to_be_bytes());
            raw.send(b'E', &execute).await;
            let mut close = vec![b'S'];
            close.extend(cstr(&name));
            raw.send(b'C', &close).await;
        }
        raw.send(b'S', &[]).await;
        let replies = raw.until_ready().await;
        assert_eq!(error_code(&replies), None, "cycles {done}..{}", done + n);
        let rows = replies.iter().filter(|(tag, _)| *tag == b'D').count();
        assert_eq!(rows, n, "one row per cycle");
        done += n;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_prepared_statements_leave_memory_flat() {
    let server = EddyProcess::start("prepare-memory");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
    let mut raw = Raw::connect(addr).await;
    cycles(&mut raw, 0, 5_000, 500).await;
    let before = rss(server.pid());
    let started = std::time::Instant::now();
    cycles(&mut raw, 5_000, 100_000, 500).await;
    let grown = rss(server.pid()).saturating_sub(before);
    eprintln!("100,000 cycles in {:?}; resident memory grew by {grown} kB", started.elapsed());
    assert!(before > 0 && grown < 16 * 1024, "the server grew by {grown} kB over 100,000 cycles");
}
