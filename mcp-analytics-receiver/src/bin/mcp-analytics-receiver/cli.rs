//! The command line, parsed by hand: two flags and two numbers do not justify a parser crate in
//! a tool whose point is to build quickly.

use std::time::Duration;

/// What bad input gets after its complaint (then exit code 2).
pub(crate) const USAGE: &str = "usage: mcp-analytics-receiver [--json] [--table] [PORT (default 7181)] \
                                [SECONDS (default: until interrupted)]";

/// What `--help` prints after [`USAGE`].
pub(crate) const HELP: &str = "\
A strict Events API on 127.0.0.1:PORT (token `test-token`, datasource `mcp_logs`): one line per
accepted row on stdout, rejected requests and quarantined lines on stderr. Stops after SECONDS,
or on Ctrl-C or SIGTERM. PORT 0 picks a free port (the first stderr line says which).

  --json      print each row's NDJSON line as received, instead of a readable line
  --table     on exit, print calls, errors, panics and p50/p95 latency per handler
              (on stderr with --json, so that stdout stays NDJSON)
  -h, --help  print this";

/// How each accepted row is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// One aligned line per row, for a person.
    Readable,
    /// The NDJSON line as received, for a program (the end-to-end tests parse these).
    Json,
}

/// A run's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) port: u16,
    /// `None`: until interrupted.
    pub(crate) lifetime: Option<Duration>,
    pub(crate) format: Format,
    pub(crate) table: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Run(Options),
    Help,
}

/// Parses the arguments after the program name. Flags may come anywhere; the numbers are
/// positional, PORT first. `--help` anywhere wins, even over bad arguments: someone who asks
/// how to call it gets the answer rather than a complaint.
///
/// # Errors
///
/// A one-line description of the first bad argument.
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        return Ok(Command::Help);
    }
    let mut options = Options {
        port: 7181,
        lifetime: None,
        format: Format::Readable,
        table: false,
    };
    let mut positional = 0;
    for arg in args {
        match arg.as_str() {
            "--json" => options.format = Format::Json,
            "--table" => options.table = true,
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            number => {
                match positional {
                    0 => {
                        options.port = number
                            .parse()
                            .map_err(|_| format!("PORT must be 0 to 65535, not `{number}`"))?;
                    }
                    1 => {
                        let seconds = number.parse().map_err(|_| {
                            format!("SECONDS must be a whole number of seconds, not `{number}`")
                        })?;
                        options.lifetime = Some(Duration::from_secs(seconds));
                    }
                    _ => return Err(format!("unexpected argument `{number}`")),
                }
                positional += 1;
            }
        }
    }
    Ok(Command::Run(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|&arg| arg.to_owned()))
    }

    fn run(port: u16, lifetime: Option<u64>, format: Format, table: bool) -> Command {
        Command::Run(Options {
            port,
            lifetime: lifetime.map(Duration::from_secs),
            format,
            table,
        })
    }

    #[test]
    fn defaults_to_port_7181_readable_until_interrupted() {
        assert_eq!(
            parse_args(&[]),
            Ok(run(7181, None, Format::Readable, false))
        );
    }

    #[test]
    fn takes_port_then_seconds_with_flags_anywhere() {
        assert_eq!(
            parse_args(&["--json", "0"]),
            Ok(run(0, None, Format::Json, false))
        );
        assert_eq!(
            parse_args(&["7200", "--table", "30"]),
            Ok(run(7200, Some(30), Format::Readable, true))
        );
        assert_eq!(
            parse_args(&["1", "2", "--json", "--table"]),
            Ok(run(1, Some(2), Format::Json, true))
        );
    }

    #[test]
    fn help_wins_over_anything_else() {
        assert_eq!(parse_args(&["7181", "--help"]), Ok(Command::Help));
        assert_eq!(parse_args(&["--bogus", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn names_the_bad_argument() {
        for (args, complaint) in [
            (&["--verbose"][..], "unknown option `--verbose`"),
            (&["-1"], "unknown option `-1`"),
            (&["65536"], "PORT must be 0 to 65535, not `65536`"),
            (&["port"], "PORT must be 0 to 65535, not `port`"),
            (
                &["7181", "1.5"],
                "SECONDS must be a whole number of seconds, not `1.5`",
            ),
            (&["7181", "5", "extra"], "unexpected argument `extra`"),
        ] {
            assert_eq!(parse_args(args), Err(complaint.to_owned()), "{args:?}");
        }
    }
}
