// Throwaway measurement (not committed).
use std::time::{Duration, Instant};
use mcp_analytics::mcp_tool;
use mcp_analytics_receiver::Receiver;

#[inline(always)]
fn work(a: u64, b: u64) -> u64 { a.wrapping_mul(31).wrapping_add(b) }
#[inline(never)]
fn baseline(a: u64, b: u64) -> u64 { work(a, b) }
#[mcp_tool]
#[inline(never)]
fn tool_sync(a: u64, b: u64) -> u64 { work(a, b) }
#[mcp_tool]
#[inline(never)]
fn tool_b(a: u64, b: u64) -> u64 { work(a, b) }

fn round(f: fn(u64, u64) -> u64) -> Duration {
    let start = Instant::now();
    let mut acc = 0u64;
    for i in 0..500u64 { acc = acc.wrapping_add(f(std::hint::black_box(i), acc)); }
    std::hint::black_box(acc);
    start.elapsed()
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let receiver = Receiver::builder().keep_rows(false).build();
    let _a = mcp_analytics::builder().read_env(false).api_url(receiver.url()).token(receiver.token())
        .spool(false).shutdown_timeout(Duration::from_secs(30)).try_init().unwrap();
    if mode == "hot" {
        let mut added = Vec::new();
        let before = mcp_analytics::stats().dropped;
        let mut next = Instant::now();
        for r in 0..4000 {
            while Instant::now() < next { std::hint::spin_loop(); }
            next += Duration::from_millis(2);
            let (s, t) = if r % 2 == 0 { let s = round(tool_sync); (s, round(baseline)) } else { let t = round(baseline); (round(tool_sync), t) };
            added.push((s.as_nanos() as f64 - t.as_nanos() as f64) / 500.0);
        }
        added.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p = |q: f64| added[((added.len() - 1) as f64 * q) as usize];
        eprintln!("added ns/call: p10 {:.1} median {:.1} p90 {:.1}; dropped {}", p(0.1), p(0.5), p(0.9), mcp_analytics::stats().dropped - before);
    } else {
        let rate: u64 = mode.parse().unwrap_or(600_000);
        let threads: u64 = std::env::args().nth(2).map(|t| t.parse().unwrap()).unwrap_or(1);
        let total = 1_000_000u64;
        let s0 = mcp_analytics::stats();
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(move || {
                    let per_tick = rate / 1000;
                    let mut emitted = 0u64;
                    let mine = total / threads;
                    let t0 = Instant::now();
                    while emitted < mine {
                        let due = ((t0.elapsed().as_nanos() as u64 / 1_000_000) + 1) * per_tick;
                        while emitted < due.min(mine) { if emitted % 2 == 0 { tool_sync(emitted, 1); } else { tool_b(emitted, 2); } emitted += 1; }
                        let next_tick = t0 + Duration::from_millis(emitted / per_tick);
                        let now = Instant::now();
                        if next_tick > now { std::thread::sleep(next_tick - now); }
                    }
                });
            }
        });
        let emit_time = start.elapsed();
        mcp_analytics::flush(Duration::from_secs(30)).unwrap();
        let total_time = start.elapsed();
        let s1 = mcp_analytics::stats();
        eprintln!("rate {rate} x{threads}: emitted in {:?}, total {:?}; dropped {} sent {} -> {:.0} ev/s", emit_time, total_time, s1.dropped - s0.dropped, s1.sent - s0.sent, (s1.sent - s0.sent) as f64 / total_time.as_secs_f64());
    }
}
