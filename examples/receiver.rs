//! A local, strict Events API on 127.0.0.1: point a server at it to see exactly what
//! mcp-analytics sends, without a Tinybird account.
//!
//! ```text
//! cargo run --example receiver -- 7181
//! TB_API_URL=http://127.0.0.1:7181 TB_WRITE_TOKEN=test-token cargo run   # your server
//! ```
//!
//! Each accepted row is printed to stdout as its NDJSON line; rejected requests (bad token, bad
//! body, ...) are described on stderr. It runs until interrupted, or for the number of seconds
//! given as a second argument.

use std::time::{Duration, Instant};

use mcp_analytics_receiver::{DEFAULT_TOKEN, Receiver};

fn main() {
    let mut args = std::env::args().skip(1);
    let port = args.next().map_or(Ok(7181), |port| port.parse::<u16>());
    let lifetime = args
        .next()
        .map(|secs| secs.parse::<u64>().map(Duration::from_secs));
    let (Ok(port), Some(Ok(_)) | None) = (port, &lifetime) else {
        eprintln!("usage: receiver [PORT (default 7181)] [SECONDS (default: until interrupted)]");
        std::process::exit(2);
    };
    let receiver = match Receiver::builder().port(port).try_build() {
        Ok(receiver) => receiver,
        Err(error) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {error}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "Events API on {} (token `{DEFAULT_TOKEN}`, datasource `mcp_logs`)",
        receiver.url()
    );

    let stop_at = lifetime
        .and_then(Result::ok)
        .map(|lifetime| Instant::now() + lifetime);
    let (mut rows_seen, mut requests_seen) = (0, 0);
    while stop_at.is_none_or(|stop_at| Instant::now() < stop_at) {
        std::thread::sleep(Duration::from_millis(100));
        for row in receiver.rows().into_iter().skip(rows_seen) {
            println!("{}", row.raw);
            rows_seen += 1;
        }
        for request in receiver.requests().into_iter().skip(requests_seen) {
            if !(200..300).contains(&request.status) {
                eprintln!(
                    "rejected: HTTP {} {}",
                    request.status,
                    request.detail.as_deref().unwrap_or_default()
                );
            }
            requests_seen += 1;
        }
    }
}
