//! The write token never shows: not in `Debug` of the builder or the guard, not in any error's
//! `Debug` or `Display`, not on stderr whatever goes wrong (refusals, retries, timeouts, a second
//! `init`, a malformed URL, a full queue, a panicking tool). And `http://` to a host other than
//! loopback warns that the token would travel in clear.
//!
//! Scenarios that need the process-global pipeline run in a process of their own
//! ([`common::in_own_process`]); the parent checks everything the child wrote to stderr.

mod common;

use std::time::Duration;

use common::{in_child, in_own_process};
use mcp_analytics::{Builder, Error, mcp_tool};
use mcp_analytics_receiver::{Receiver, Scripted};

/// Distinctive, so that any leak of it, whole or in part, is found.
const TOKEN: &str = "p.SECRET-TOKEN-9f3c";

/// Fails if `text` holds the token or a recognizable part of it.
#[track_caller]
fn assert_no_token(what: &str, text: &str) {
    for part in [TOKEN, "SECRET-TOKEN", "9f3c"] {
        assert!(!text.contains(part), "{what} shows `{part}`:\n{text}");
    }
}

/// Both renderings of an error, checked.
#[track_caller]
fn assert_error_hides_token(what: &str, error: &Error) {
    assert_no_token(&format!("{what} (Debug)"), &format!("{error:?}"));
    assert_no_token(&format!("{what} (pretty Debug)"), &format!("{error:#?}"));
    assert_no_token(&format!("{what} (Display)"), &error.to_string());
}

/// Without a spool: what these tests do not deliver must not reach the next one.
fn with_token() -> Builder {
    mcp_analytics::builder()
        .read_env(false)
        .token(TOKEN)
        .spool(false)
}

#[mcp_tool]
fn plain(i: u32) -> u32 {
    i
}

#[mcp_tool]
fn explode() -> u8 {
    panic!("tool exploded")
}

fn emit(n: u32) {
    for i in 0..n {
        plain(i);
    }
}

#[test]
fn debug_of_the_builder_hides_the_token() {
    let builder = with_token()
        .api_url("https://api.us-east.tinybird.co")
        .datasource("visible_datasource")
        .queue_capacity(4096);
    let debug = format!("{builder:?}");
    // It does print the settings, so the check below looks at a real rendering.
    assert!(debug.contains("visible_datasource"), "{debug}");
    assert!(debug.contains("api.us-east.tinybird.co"), "{debug}");
    assert_no_token("Builder's Debug", &debug);
    assert_no_token("Builder's pretty Debug", &format!("{builder:#?}"));
}

#[test]
fn errors_found_before_starting_never_carry_the_token() {
    let refused = |what: &str, builder: Builder| {
        let error = builder.try_init().expect_err(what);
        assert_error_hides_token(what, &error);
        error
    };

    // Invalid URLs, with the token set, and with the token pasted into the URL's query or
    // fragment, where users put it when following other APIs' docs.
    for url in [
        "api.tinybird.co".to_owned(),
        "ftp://api.tinybird.co".to_owned(),
        "https://".to_owned(),
        format!("https://api.tinybird.co/?token={TOKEN}"),
        format!("https://api.tinybird.co/v0/events?name=mcp_logs&token={TOKEN}"),
        format!("https://api.tinybird.co/#{TOKEN}"),
    ] {
        let error = refused(&url, with_token().api_url(url.as_str()));
        assert!(
            matches!(error, Error::InvalidUrl { .. }),
            "{url}: {error:?}"
        );
    }

    // Invalid settings.
    for (what, builder) in [
        ("queue_capacity", with_token().queue_capacity(0)),
        ("max_batch_bytes", with_token().max_batch_bytes(10)),
        ("max_batch_events", with_token().max_batch_events(0)),
        ("max_attempts", with_token().max_attempts(0)),
        ("datasource", with_token().datasource("not-a-datasource")),
    ] {
        let error = refused(what, builder);
        assert!(
            matches!(error, Error::InvalidSetting { .. }),
            "{what}: {error:?}"
        );
    }

    // A token that cannot be sent: the error says why without quoting it.
    for token in [
        format!("{TOKEN} "),
        format!("{TOKEN}\nX"),
        format!("Bearer {TOKEN}"),
    ] {
        let error = refused(
            "token with whitespace",
            mcp_analytics::builder().read_env(false).token(token),
        );
        assert!(matches!(error, Error::InvalidToken), "{error:?}");
    }

    // A `.env` whose token line does not parse.
    let dir = std::env::temp_dir().join(format!("mcp-analytics-security-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dotenv = dir.join("broken.env");
    std::fs::write(
        &dotenv,
        format!("TB_API_URL=http://127.0.0.1:9\nTB_WRITE_TOKEN='{TOKEN}\n"),
    )
    .unwrap();
    let error = refused(
        ".env",
        mcp_analytics::builder().dotenv_path(dotenv.as_path()),
    );
    assert!(matches!(error, Error::Dotenv { .. }), "{error:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_token_pasted_into_the_urls_credentials_is_not_echoed() {
    for url in [
        format!("https://user:{TOKEN}@api.tinybird.co"),
        format!("https://{TOKEN}@api.tinybird.co"),
        format!("https://:{TOKEN}@api.tinybird.co/"),
    ] {
        let error = with_token().api_url(url.as_str()).try_init().unwrap_err();
        assert!(matches!(error, Error::InvalidUrl { .. }), "{error:?}");
        assert_error_hides_token("a URL with credentials", &error);
    }
}

/// Everything that can go wrong at run time, in one process: each leaves a diagnostic on
/// stderr, and none of them shows the token.
#[test]
fn nothing_written_to_stderr_carries_the_token() {
    let stderr = in_own_process("nothing_written_to_stderr_carries_the_token", &[], || {
        // Before init: flushing is an error, and events wait in a queue that fills up.
        let error = mcp_analytics::flush(Duration::from_millis(100)).unwrap_err();
        assert!(matches!(error, Error::NotInitialized), "{error:?}");
        assert_error_hides_token("NotInitialized", &error);
        emit(16_384 + 10); // the default capacity, and then some: "the event queue is full"

        // A service that expects another token: every batch is refused with 403.
        let refusing = Receiver::builder().token("a-different-token").build();
        let analytics = with_token().api_url(refusing.url()).try_init().unwrap();
        assert_no_token("Guard's Debug", &format!("{analytics:?}"));
        mcp_analytics::flush(Duration::from_secs(3)).unwrap();
        let statuses: Vec<u16> = refusing.requests().iter().map(|r| r.status).collect();
        assert!(
            !statuses.is_empty() && statuses.iter().all(|&s| s == 403),
            "{statuses:?}"
        );
        assert_eq!(mcp_analytics::stats().failed, 16_384);

        // Initialized twice.
        let error = with_token().api_url(refusing.url()).try_init().unwrap_err();
        assert!(matches!(error, Error::AlreadyInitialized), "{error:?}");
        assert_error_hides_token("AlreadyInitialized", &error);
        drop(with_token().api_url(refusing.url()).init()); // warns: "init() was called again"
        mcp_analytics::shutdown(Duration::from_secs(3)).unwrap();

        // Retried answers (503 and 429), then accepted.
        let flaky = Receiver::builder().token(TOKEN).build();
        flaky.script([
            Scripted::retry_after(503, "0"),
            Scripted::retry_after(429, "0"),
        ]);
        let _analytics = with_token().api_url(flaky.url()).try_init().unwrap();
        emit(5);
        mcp_analytics::flush(Duration::from_secs(3)).unwrap();
        assert_eq!(flaky.rows().len(), 5);
        assert!(mcp_analytics::stats().retried >= 2);
        mcp_analytics::shutdown(Duration::from_secs(3)).unwrap();

        // Connections refused, retried, then given up on.
        let closed = Receiver::start();
        let closed_url = closed.url();
        closed.shutdown();
        let _analytics = with_token()
            .api_url(closed_url)
            .max_attempts(2)
            .try_init()
            .unwrap();
        emit(5);
        mcp_analytics::flush(Duration::from_secs(3)).unwrap();
        mcp_analytics::shutdown(Duration::from_secs(3)).unwrap();

        // A request that never gets an answer: flush and shutdown time out.
        let hanging = Receiver::builder().token(TOKEN).build();
        hanging.script([Scripted::Hang, Scripted::Hang]);
        let analytics = with_token()
            .api_url(hanging.url())
            .max_batch_age(Duration::from_millis(10))
            .shutdown_timeout(Duration::from_millis(300))
            .try_init()
            .unwrap();
        emit(3);
        assert_eq!(
            hanging.wait_for_requests(1, Duration::from_secs(10)).len(),
            1
        );
        let error = mcp_analytics::flush(Duration::from_millis(100)).unwrap_err();
        assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
        assert_error_hides_token("flush's Timeout", &error);
        drop(analytics); // reports "shutdown: 3 events were not delivered within 300ms"

        // A malformed URL given to `init`, which reports it and disables analytics.
        drop(with_token().api_url("api.tinybird.co").init());
        emit(1); // "analytics is disabled or shut down"

        // A tool that panics: the payload is the tool's own, and the panic still propagates.
        let payload = std::panic::catch_unwind(explode).unwrap_err();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .expect("the tool's own payload");
        assert_eq!(message, "tool exploded");
        assert_no_token("the panic payload", message);
    });
    if in_child() {
        return;
    }
    // Every path above was taken...
    for expected in [
        "the event queue is full",
        "refused a batch",
        "403",
        "init() was called again",
        "gave up after 2 attempts",
        "shutdown: 3 events were not delivered within 300ms",
        "`api.tinybird.co` is not usable",
        "analytics is disabled",
        "tool exploded",
    ] {
        assert!(stderr.contains(expected), "no `{expected}` in:\n{stderr}");
    }
    // ... and none of it shows the token.
    assert_no_token("stderr", &stderr);
}

#[test]
fn http_to_a_host_other_than_loopback_warns_that_the_token_travels_in_clear() {
    let stderr = in_own_process(
        "http_to_a_host_other_than_loopback_warns_that_the_token_travels_in_clear",
        &[],
        || {
            // Nothing is recorded, so nothing is sent: the host is never contacted.
            let _analytics = with_token()
                .api_url("http://example.invalid:9")
                .try_init()
                .unwrap();
            mcp_analytics::shutdown(Duration::from_secs(3)).unwrap();
        },
    );
    if !in_child() {
        assert!(stderr.contains("travels unencrypted"), "{stderr}");
        assert_no_token("stderr", &stderr);
    }
}

#[test]
fn http_to_loopback_and_https_anywhere_do_not_warn() {
    let stderr = in_own_process(
        "http_to_loopback_and_https_anywhere_do_not_warn",
        &[],
        || {
            for url in [
                "http://127.0.0.1:9",
                "http://127.0.0.2:9",
                "http://localhost:9",
                "http://[::1]:9",
                "https://example.invalid",
            ] {
                let _analytics = with_token().api_url(url).try_init().unwrap();
                mcp_analytics::shutdown(Duration::from_secs(3)).unwrap();
            }
        },
    );
    if !in_child() {
        assert!(!stderr.contains("unencrypted"), "{stderr}");
    }
}
