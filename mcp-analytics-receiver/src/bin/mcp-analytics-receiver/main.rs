//! A local, strict Events API on 127.0.0.1: point a server at it to see exactly what
//! mcp-analytics sends, without a Tinybird account.
//!
//! ```text
//! cargo run -p mcp-analytics-receiver -- 7181
//! TB_API_URL=http://127.0.0.1:7181 TB_WRITE_TOKEN=test-token cargo run   # your server
//! ```
//!
//! It is the receiver the tests use, so a row it prints is one Tinybird would ingest, and a
//! request it rejects (on stderr) is one Tinybird would reject. See `--help` for the flags.

mod cli;
mod line;

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use mcp_analytics_receiver::summary::Table;
use mcp_analytics_receiver::{DEFAULT_DATASOURCE, DEFAULT_TOKEN, Receiver};

use cli::{Command, Format, Options};

/// How often new rows are printed: often enough to feel live, and the end-to-end tests' "no row
/// for a while" settles on a few of these cycles.
const POLL: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            println!("{}\n\n{}", cli::USAGE, cli::HELP);
            return ExitCode::SUCCESS;
        }
        Err(complaint) => {
            eprintln!("mcp-analytics-receiver: {complaint}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let receiver = match Receiver::builder().port(options.port).try_build() {
        Ok(receiver) => receiver,
        Err(error) => {
            eprintln!("cannot listen on 127.0.0.1:{}: {error}", options.port);
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "Events API on {} (token `{DEFAULT_TOKEN}`, datasource `{DEFAULT_DATASOURCE}`)",
        receiver.url()
    );
    match run(&receiver, &options) {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever reads stdout stopped reading (`| head`): nothing left to say to anyone.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mcp-analytics-receiver: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints rows and rejections as they come until the lifetime is over or a stop signal arrives,
/// then what came in the meantime, then the table if asked.
fn run(receiver: &Receiver, options: &Options) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut printer = Printer {
        format: options.format,
        rows_seen: 0,
        requests_seen: 0,
    };
    runtime.block_on(async {
        let stop = stop_signal();
        let end_of_life = async {
            match options.lifetime {
                Some(lifetime) => tokio::time::sleep(lifetime).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stop, end_of_life);
        let mut poll = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                () = &mut stop => break Ok::<(), io::Error>(()),
                () = &mut end_of_life => break Ok(()),
                _ = poll.tick() => printer.catch_up(receiver)?,
            }
        }
    })?;
    printer.catch_up(receiver)?;

    if options.table {
        let table = Table::from_rows(&receiver.rows());
        let table = if table.is_empty() {
            "no calls received".to_owned()
        } else {
            table.to_string()
        };
        match options.format {
            Format::Readable => writeln!(io::stdout().lock(), "\n{table}")?,
            Format::Json => eprintln!("\n{table}"),
        }
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (what a supervisor, a test harness or `kill` sends): either way the rows
/// that arrived last are printed, and the table, rather than lost with the process.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                return;
            }
            Err(error) => eprintln!("mcp-analytics-receiver: cannot handle SIGTERM: {error}"),
        }
    }
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("mcp-analytics-receiver: cannot handle Ctrl-C: {error}");
        std::future::pending::<()>().await;
    }
}

/// Where the printing got to, so that each row and each rejection is printed once.
struct Printer {
    format: Format,
    rows_seen: usize,
    requests_seen: usize,
}

impl Printer {
    /// Prints the rows accepted and the requests refused since the last call.
    fn catch_up(&mut self, receiver: &Receiver) -> io::Result<()> {
        let rows = receiver.rows_from(self.rows_seen);
        if !rows.is_empty() {
            // One write per batch, not per row: stdout is line-buffered even into a pipe.
            let mut out = io::BufWriter::new(io::stdout().lock());
            for row in &rows {
                match self.format {
                    Format::Readable => writeln!(out, "{}", line::readable(row))?,
                    Format::Json => writeln!(out, "{}", row.raw)?,
                }
            }
            out.flush()?;
            self.rows_seen += rows.len();
        }

        let requests = receiver.requests_from(self.requests_seen);
        for request in &requests {
            let detail = request.detail.as_deref().unwrap_or_default();
            if !(200..300).contains(&request.status) {
                eprintln!("rejected: HTTP {} {detail}", request.status);
            } else if request.quarantined > 0 {
                // Accepted with a 2xx, yet these lines would land in Tinybird's quarantine
                // datasource, not in `mcp_logs`: as lost as a rejected request's.
                eprintln!(
                    "rejected: HTTP {} but {} line(s) quarantined: {detail}",
                    request.status, request.quarantined
                );
            }
        }
        self.requests_seen += requests.len();
        Ok(())
    }
}
