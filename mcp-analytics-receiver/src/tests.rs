//! End-to-end tests of the receiver over real loopback HTTP, through [`crate::test_client`].

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::test_client::{HttpRequest, HttpResponse, gzip};
use crate::{Receiver, Scripted, percentile};

/// Long enough never to be hit by a passing test, short enough to fail a broken one quickly.
const WAIT: Duration = Duration::from_secs(5);

/// One schema-valid NDJSON line (without newline).
fn line(session: &str, level: &str, record: Value) -> String {
    json!({
        "timestamp": "2025-01-02 03:04:05.678",
        "session": session,
        "level": level,
        "record": record.to_string(),
    })
    .to_string()
}

/// Lines joined as NDJSON, with the trailing newline a client sends.
fn ndjson(lines: &[String]) -> String {
    lines
        .iter()
        .flat_map(|line| [line.as_str(), "\n"])
        .collect()
}

fn one_row() -> String {
    ndjson(&[line("s1", "info", json!({ "event": "tool_call" }))])
}

fn post(receiver: &Receiver, body: &str) -> HttpResponse {
    HttpRequest::events(receiver, "name=mcp_logs", body).send(receiver)
}

/// Asserts an error answer: its status, a JSON `{"error": ...}` body containing `needle`, and
/// that nothing was accepted.
fn assert_rejected(receiver: &Receiver, response: &HttpResponse, status: u16, needle: &str) {
    assert_eq!(response.status, status, "body: {}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let error = response.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no `error` string in {}", response.body))
        .to_owned();
    assert!(error.contains(needle), "{error:?} lacks {needle:?}");
    assert!(
        receiver.rows().is_empty(),
        "rows accepted by a rejected request"
    );
    let logged = receiver.requests().last().cloned().expect("request logged");
    assert_eq!(logged.status, status);
    assert_eq!((logged.rows, logged.quarantined), (0, 0));
}

#[test]
fn accepts_plain_ndjson_and_parses_rows() {
    let receiver = Receiver::start();
    assert!(receiver.url().starts_with("http://127.0.0.1:"));
    assert!(!receiver.url().ends_with('/'));
    assert_eq!(receiver.token(), "test-token");
    let body = ndjson(&[
        line(
            "s1",
            "info",
            json!({ "tool": "search", "duration_ms": 12.5 }),
        ),
        line("s2", "error", json!({ "tool": "fetch" })),
    ]);

    let response = post(&receiver, &body);

    assert_eq!(response.status, 202, "body: {}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        response.json(),
        json!({ "successful_rows": 2, "quarantined_rows": 0 })
    );
    let rows = receiver.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].timestamp, "2025-01-02 03:04:05.678");
    assert_eq!(
        (rows[0].session.as_str(), rows[0].level.as_str()),
        ("s1", "info")
    );
    assert_eq!(rows[0].record_str("tool"), "search");
    assert_eq!(rows[0].record_str("missing"), "");
    assert_eq!(rows[0].record_str("duration_ms"), "", "not a string");
    assert_eq!(rows[0].duration_ms(), Some(12.5));
    assert_eq!(rows[1].duration_ms(), None);
    assert_eq!(rows[1].datasource, "mcp_logs");
    assert_eq!(format!("{}\n{}\n", rows[0].raw, rows[1].raw), body);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let logged = &requests[0];
    assert_eq!(logged.status, 202);
    assert_eq!(logged.datasource.as_deref(), Some("mcp_logs"));
    assert!(!logged.wait && !logged.gzip);
    assert_eq!(logged.content_type.as_deref(), Some("application/x-ndjson"));
    assert_eq!(logged.body_bytes, body.len());
    assert_eq!((logged.rows, logged.quarantined), (2, 0));
    assert_eq!(logged.detail, None);
}

#[test]
fn accepts_gzip_bodies_and_logs_their_wire_size() {
    let receiver = Receiver::start();
    let body = ndjson(&[line("s1", "info", json!({})), line("s1", "info", json!({}))]);
    let request = HttpRequest::events(&receiver, "name=mcp_logs", &body).gzipped();

    let response = request.send(&receiver);

    assert_eq!(response.status, 202, "body: {}", response.body);
    assert_eq!(response.json()["successful_rows"], 2);
    assert_eq!(receiver.rows().len(), 2);
    let logged = &receiver.requests()[0];
    assert!(logged.gzip);
    assert_eq!(logged.body_bytes, gzip(body.as_bytes()).len());
}

#[test]
fn wait_true_answers_200() {
    let receiver = Receiver::start();
    let response =
        HttpRequest::events(&receiver, "name=mcp_logs&wait=true", &one_row()).send(&receiver);
    assert_eq!(response.status, 200, "body: {}", response.body);
    assert!(receiver.requests()[0].wait);

    let response =
        HttpRequest::events(&receiver, "wait=false&name=mcp_logs", &one_row()).send(&receiver);
    assert_eq!(response.status, 202, "body: {}", response.body);
    assert_eq!(receiver.rows().len(), 2);
}

#[test]
fn quarantines_schema_violations_and_accepts_the_rest() {
    let receiver = Receiver::start();
    let body = ndjson(&[
        line("good", "info", json!({})),
        json!({ "timestamp": "2025-02-30 00:00:00", "session": "s", "level": "info", "record": "{}" })
            .to_string(),
        json!({ "timestamp": "2025-01-01 00:00:00", "session": "s", "level": "info", "record": "not json" })
            .to_string(),
    ]);

    let response = post(&receiver, &body);

    assert_eq!(response.status, 202, "body: {}", response.body);
    assert_eq!(
        response.json(),
        json!({ "successful_rows": 1, "quarantined_rows": 2 })
    );
    let rows = receiver.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].session, "good");
    let logged = &receiver.requests()[0];
    assert_eq!((logged.rows, logged.quarantined), (1, 2));
    let detail = logged.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("line 2") && detail.contains("line 3"),
        "{detail}"
    );
}

#[test]
fn rejects_a_missing_or_wrong_token_with_403_without_echoing_it() {
    let receiver = Receiver::start();
    for authorization in [
        None,
        Some("Bearer wrong-secret"),
        Some("bearer test-token"),
        Some("test-token"),
        Some("Bearer test-token-and-more"),
        Some("Bearer  test-token"),
    ] {
        let mut request = HttpRequest::events(&receiver, "name=mcp_logs", &one_row());
        request = match authorization {
            Some(value) => request.header("Authorization", value),
            None => request.without_header("Authorization"),
        };
        let response = request.send(&receiver);
        assert_rejected(&receiver, &response, 403, "invalid authentication token");
        assert_eq!(
            response.json(),
            json!({ "error": "invalid authentication token" })
        );
        assert!(!response.body.contains("wrong-secret"));
    }
}

#[test]
fn rejects_other_paths_and_unknown_datasources_with_404() {
    let receiver = Receiver::start();
    for path in ["/v0/event", "/v0/events/", "/v0/datasources", "/"] {
        let response = HttpRequest::new("POST", &format!("{path}?name=mcp_logs"))
            .header("Authorization", "Bearer test-token")
            .body(one_row().as_bytes())
            .send(&receiver);
        assert_rejected(&receiver, &response, 404, "only POST /v0/events");
    }

    let response = HttpRequest::events(&receiver, "name=other_logs", &one_row()).send(&receiver);
    assert_rejected(&receiver, &response, 404, "\"other_logs\" not found");
    assert_eq!(
        receiver
            .requests()
            .last()
            .and_then(|logged| logged.datasource.clone()),
        Some("other_logs".to_owned())
    );

    let response = HttpRequest::events(&receiver, "wait=true", &one_row()).send(&receiver);
    assert_rejected(&receiver, &response, 404, "missing `name`");
}

#[test]
fn rejects_other_methods_with_405() {
    let receiver = Receiver::start();
    for method in ["GET", "PUT", "DELETE"] {
        let response = HttpRequest::new(method, "/v0/events?name=mcp_logs")
            .header("Authorization", "Bearer test-token")
            .send(&receiver);
        assert_rejected(&receiver, &response, 405, method);
        assert_eq!(response.header("allow"), Some("POST"));
    }
}

#[test]
fn rejects_bad_queries_with_400() {
    let receiver = Receiver::start();
    for (query, needle) in [
        (
            "name=mcp_logs&token=test-token",
            "unknown query parameter \"token\"",
        ),
        ("name=mcp_logs&name=mcp_logs", "duplicate query parameter"),
        ("name=mcp_logs&wait=1", "`wait` must be true or false"),
        ("name=mcp%zzlogs", "malformed query parameter"),
    ] {
        let response = HttpRequest::events(&receiver, query, &one_row()).send(&receiver);
        assert_rejected(&receiver, &response, 400, needle);
    }
}

#[test]
fn requires_content_length_411() {
    let receiver = Receiver::start();
    let response = HttpRequest::events(&receiver, "name=mcp_logs", "")
        .without_header("Content-Length")
        .send(&receiver);
    assert_rejected(&receiver, &response, 411, "Content-Length");
    assert_eq!(receiver.requests()[0].body_bytes, 0);
}

#[test]
fn rejects_bodies_over_the_limit_413_counting_wire_bytes() {
    let receiver = Receiver::builder().max_body_bytes(256).build();
    // 300 bytes of NDJSON: too large raw, but well under the limit once gzipped.
    let body = ndjson(&[
        line("s", "info", json!({ "padding": "x".repeat(100) })),
        line("s", "info", json!({ "padding": "x".repeat(100) })),
    ]);
    assert!(body.len() > 256);
    let plain = HttpRequest::events(&receiver, "name=mcp_logs", &body);

    let response = plain.send(&receiver);
    assert_rejected(&receiver, &response, 413, "exceeds the limit of 256 bytes");
    assert_eq!(receiver.requests()[0].body_bytes, body.len());

    let response = plain.gzipped().send(&receiver);
    assert_eq!(response.status, 202, "body: {}", response.body);
    assert_eq!(receiver.rows().len(), 2);
}

#[test]
fn a_413_reaches_a_client_still_sending_a_large_body() {
    let receiver = Receiver::start();
    // Far more than the socket buffers hold: the client is still writing when the answer is
    // decided, so this fails with a broken pipe unless the receiver reads the body first.
    let body = "x".repeat(crate::DEFAULT_MAX_BODY_BYTES + 1);
    let response = HttpRequest::events(&receiver, "name=mcp_logs", &body).send(&receiver);
    assert_rejected(
        &receiver,
        &response,
        413,
        "exceeds the limit of 10485760 bytes",
    );
}

#[test]
fn rejects_unsupported_encodings_415_and_bad_gzip_400() {
    let receiver = Receiver::start();
    for encoding in ["br", "deflate", "identity", "gzip, gzip"] {
        let response = HttpRequest::events(&receiver, "name=mcp_logs", &one_row())
            .header("Content-Encoding", encoding)
            .send(&receiver);
        assert_rejected(&receiver, &response, 415, "unsupported Content-Encoding");
    }

    let response = HttpRequest::events(&receiver, "name=mcp_logs", &one_row())
        .header("Content-Encoding", "gzip")
        .send(&receiver);
    assert_rejected(&receiver, &response, 400, "invalid gzip body");
}

#[test]
fn rejects_a_bad_line_with_400_and_accepts_nothing_from_it() {
    let receiver = Receiver::start();
    let valid = line("s", "info", json!({}));
    for (body, needle) in [
        (
            format!("{valid}\nnot json\n{valid}\n"),
            "line 2: invalid JSON",
        ),
        (format!("{valid}\n[{valid}]\n"), "line 2: not a JSON object"),
        (format!("{valid}\n\n{valid}\n"), "line 2"),
        (String::new(), "line 1: empty body"),
    ] {
        let response = post(&receiver, &body);
        assert_rejected(&receiver, &response, 400, needle);
    }
    // Without a trailing newline the last line still counts.
    assert_eq!(post(&receiver, &valid).status, 202);
}

#[test]
fn serves_several_datasources_with_a_custom_token() {
    let receiver = Receiver::builder()
        .token("secret")
        .datasource("mcp_logs")
        .datasource("mcp_logs_staging")
        .build();
    assert_eq!(receiver.token(), "secret");

    for datasource in ["mcp_logs", "mcp_logs_staging"] {
        let response = HttpRequest::events(&receiver, &format!("name={datasource}"), &one_row())
            .send(&receiver);
        assert_eq!(response.status, 202, "body: {}", response.body);
    }
    let datasources: Vec<_> = receiver
        .rows()
        .into_iter()
        .map(|row| row.datasource)
        .collect();
    assert_eq!(datasources, ["mcp_logs", "mcp_logs_staging"]);
}

#[test]
fn scripted_statuses_answer_in_order_then_normal_processing_resumes() {
    let receiver = Receiver::start();
    receiver.script([Scripted::retry_after(429, "2"), Scripted::status(503)]);

    let first = post(&receiver, &one_row());
    assert_eq!(first.status, 429);
    assert_eq!(first.header("retry-after"), Some("2"));
    assert!(first.json()["error"].is_string());
    let second = post(&receiver, &one_row());
    assert_eq!(second.status, 503);
    assert_eq!(second.header("retry-after"), None);
    assert!(
        receiver.rows().is_empty(),
        "scripted answers accept nothing"
    );

    assert_eq!(post(&receiver, &one_row()).status, 202);
    assert_eq!(receiver.rows().len(), 1);
    let statuses: Vec<_> = receiver
        .requests()
        .iter()
        .map(|logged| logged.status)
        .collect();
    assert_eq!(statuses, [429, 503, 202]);

    receiver.script([Scripted::Status {
        status: 500,
        retry_after: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
        body: r#"{"error":"boom"}"#.to_owned(),
    }]);
    let custom = post(&receiver, &one_row());
    assert_eq!(custom.status, 500);
    assert_eq!(
        custom.header("retry-after"),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );
    assert_eq!(custom.body, r#"{"error":"boom"}"#);
}

#[test]
#[should_panic(expected = "invalid status code 101")]
fn scripting_a_non_final_status_panics_at_the_call_site() {
    Receiver::start().script([Scripted::status(101)]);
}

#[test]
#[should_panic(expected = "invalid Retry-After value")]
fn scripting_an_invalid_retry_after_panics_at_the_call_site() {
    Receiver::start().script([Scripted::retry_after(429, "1\n2")]);
}

#[test]
fn scripted_delay_waits_then_processes_normally() {
    let receiver = Receiver::start();
    let delay = Duration::from_millis(300);
    receiver.script([Scripted::Delay(delay)]);

    let started = Instant::now();
    let response = post(&receiver, &one_row());

    assert!(
        started.elapsed() >= delay,
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(response.status, 202, "body: {}", response.body);
    assert_eq!(receiver.rows().len(), 1);
}

#[test]
fn scripted_hang_holds_the_request_until_shutdown_which_stays_bounded() {
    let receiver = Receiver::start();
    receiver.script([Scripted::Hang]);
    let request = HttpRequest::events(&receiver, "name=mcp_logs", &one_row());
    let addr = receiver.addr;
    let client = thread::spawn(move || request.try_send_to(addr));

    let requests = receiver.wait_for_requests(1, WAIT);
    assert_eq!(requests.len(), 1, "the hanging request was never logged");
    assert_eq!(requests[0].status, 0);
    thread::sleep(Duration::from_millis(100));
    assert!(!client.is_finished(), "a hanging request was answered");
    assert!(receiver.rows().is_empty());

    let started = Instant::now();
    receiver.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    let response = client
        .join()
        .expect("client thread panicked")
        .expect("the held request is released with an answer");
    assert_eq!(response.status, 503, "body: {}", response.body);
}

#[test]
fn shutdown_returns_promptly() {
    let receiver = Receiver::start();
    assert_eq!(post(&receiver, &one_row()).status, 202);
    let started = Instant::now();
    receiver.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn wait_for_rows_returns_what_it_has_at_the_timeout() {
    let receiver = Receiver::start();
    assert_eq!(post(&receiver, &one_row()).status, 202);
    let timeout = Duration::from_millis(200);

    let started = Instant::now();
    let rows = receiver.wait_for_rows(2, timeout);

    assert!(
        started.elapsed() >= timeout,
        "returned after {:?}",
        started.elapsed()
    );
    assert_eq!(rows.len(), 1);
}

#[test]
fn wait_for_rows_wakes_as_soon_as_rows_arrive() {
    let receiver = Receiver::start();
    thread::scope(|scope| {
        scope.spawn(|| {
            thread::sleep(Duration::from_millis(50));
            assert_eq!(post(&receiver, &one_row()).status, 202);
        });
        let started = Instant::now();
        let rows = receiver.wait_for_rows(1, WAIT);
        assert_eq!(rows.len(), 1);
        assert!(
            started.elapsed() < WAIT / 2,
            "woke after {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn write_ndjson_writes_every_accepted_raw_line() {
    let receiver = Receiver::start();
    let body = ndjson(&[
        line("a", "info", json!({})),
        line("b", "info", json!({ "k": 1 })),
    ]);
    assert_eq!(post(&receiver, &body).status, 202);
    let path = std::env::temp_dir().join(format!(
        "mcp-analytics-receiver-write-ndjson-{}-{}.ndjson",
        std::process::id(),
        receiver.url().rsplit(':').next().unwrap_or_default()
    ));

    receiver.write_ndjson(&path).expect("write the NDJSON file");
    let written = std::fs::read_to_string(&path).expect("read the NDJSON file back");
    std::fs::remove_file(&path).expect("remove the NDJSON file");

    assert_eq!(written, body);
}

#[test]
fn rows_from_and_requests_from_return_only_what_came_after_the_index() {
    let receiver = Receiver::start();
    assert_eq!(post(&receiver, &one_row()).status, 202);
    let body = ndjson(&[line("b", "info", json!({})), line("c", "info", json!({}))]);
    assert_eq!(post(&receiver, &body).status, 202);

    let sessions = |rows: Vec<crate::Row>| -> Vec<String> {
        rows.into_iter().map(|row| row.session).collect()
    };
    assert_eq!(sessions(receiver.rows_from(0)), ["s1", "b", "c"]);
    assert_eq!(sessions(receiver.rows_from(1)), ["b", "c"]);
    assert_eq!(sessions(receiver.rows_from(3)), Vec::<String>::new());
    assert_eq!(sessions(receiver.rows_from(7)), Vec::<String>::new());
    let accepted: Vec<usize> = receiver
        .requests_from(1)
        .iter()
        .map(|request| request.rows)
        .collect();
    assert_eq!(accepted, [2]);
    assert!(receiver.requests_from(2).is_empty());
}

#[test]
fn percentile_uses_nearest_rank() {
    let values: Vec<f64> = (1..=20).map(f64::from).collect();
    assert_eq!(percentile(&values, 0.0), 1.0);
    assert_eq!(percentile(&values, 5.0), 1.0);
    assert_eq!(percentile(&values, 50.0), 10.0);
    assert_eq!(percentile(&values, 95.0), 19.0);
    assert_eq!(percentile(&values, 96.0), 20.0);
    assert_eq!(percentile(&values, 100.0), 20.0);
    assert_eq!(percentile(&[3.5], 99.0), 3.5);
    assert_eq!(percentile(&[15.0, 20.0, 35.0, 40.0, 50.0], 30.0), 20.0);
    assert_eq!(percentile(&[15.0, 20.0, 35.0, 40.0, 50.0], 40.0), 20.0);
    assert_eq!(percentile(&[15.0, 20.0, 35.0, 40.0, 50.0], 50.0), 35.0);
    assert!(percentile(&[], 50.0).is_nan());
}

#[test]
fn scripted_accept_processes_normally_and_takes_its_turn() {
    let receiver = Receiver::start();
    receiver.script([Scripted::Accept, Scripted::status(503)]);
    assert_eq!(receiver.scripted_left(), 2);
    assert_eq!(post(&receiver, &one_row()).status, 202);
    assert_eq!(receiver.scripted_left(), 1);
    assert_eq!(post(&receiver, &one_row()).status, 503);
    assert_eq!(receiver.scripted_left(), 0);
    assert_eq!(post(&receiver, &one_row()).status, 202);
    assert_eq!(receiver.rows().len(), 2);
}

#[test]
fn a_delay_longer_than_the_clients_patience_still_stores_the_rows() {
    let receiver = Receiver::start();
    let delay = Duration::from_secs(1);
    receiver.script([Scripted::Delay(delay)]);
    let started = Instant::now();

    // The client gives up after 100 ms and closes its connection.
    let outcome = HttpRequest::events(&receiver, "name=mcp_logs", &one_row())
        .try_send_with_timeout(receiver.addr, Duration::from_millis(100));
    let error = outcome.expect_err("answered before the delay");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{error}"
    );
    assert!(receiver.rows().is_empty(), "stored before the delay");

    // The service still processes what it received: the row lands, late.
    let rows = receiver.wait_for_rows(1, WAIT);
    assert_eq!(rows.len(), 1);
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    let logged = &receiver.requests()[0];
    assert_eq!((logged.status, logged.rows), (202, 1));
}

/// The `R` and `B` of a reset's log detail, `reset after reading R of B body bytes ...`.
fn reset_read_of(detail: &str) -> (usize, usize) {
    let numbers: Vec<usize> = detail
        .split(' ')
        .filter_map(|word| word.parse().ok())
        .collect();
    assert!(
        detail.starts_with("reset after reading") && numbers.len() == 2,
        "{detail}"
    );
    (numbers[0], numbers[1])
}

#[test]
fn scripted_reset_breaks_the_connection_mid_body_without_answering() {
    let receiver = Receiver::start();
    receiver.script([Scripted::Reset]);
    // 8 MiB (under the 10 MiB limit): far more than one read, so the reset comes mid-body while
    // the client is still writing.
    let body = ndjson(&vec![
        line(
            "s",
            "info",
            json!({ "padding": "x".repeat(1000) })
        );
        8 * 1024
    ]);
    let outcome = HttpRequest::events(&receiver, "name=mcp_logs", &body).try_send_to(receiver.addr);

    let error = outcome.expect_err("a reset request got an answer");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );
    let logged = &receiver.requests()[0];
    assert_eq!((logged.status, logged.rows), (0, 0));
    let (read, declared) = reset_read_of(logged.detail.as_deref().unwrap_or_default());
    assert_eq!(declared, body.len());
    assert!(0 < read && read < declared, "read {read} of {declared}");
    assert!(receiver.rows().is_empty());

    // The script is used up: the next request, on a new connection, goes through.
    assert_eq!(post(&receiver, &one_row()).status, 202);
    assert_eq!(receiver.rows().len(), 1);
}

#[test]
fn scripted_reset_of_a_small_request_is_an_rst_instead_of_an_answer() {
    let receiver = Receiver::start();
    receiver.script([Scripted::Reset]);
    let error = HttpRequest::events(&receiver, "name=mcp_logs", &one_row())
        .try_send_to(receiver.addr)
        .expect_err("a reset request got an answer");
    // An RST, not an orderly close: reading fails rather than ending.
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    assert_eq!(receiver.requests()[0].status, 0);
    assert!(receiver.rows().is_empty());
}

#[test]
fn going_down_refuses_connections_and_going_up_serves_again_on_the_same_port() {
    let receiver = Receiver::start();
    let url = receiver.url();
    // `Connection: close` answers make the server close first: its side of each connection
    // lingers in TIME_WAIT on the port, which binding again must not mind.
    for _ in 0..3 {
        assert_eq!(post(&receiver, &one_row()).status, 202);
    }
    assert!(receiver.is_up());

    receiver.go_down();
    assert!(!receiver.is_up());
    let refused = std::net::TcpStream::connect(receiver.addr).expect_err("connected while down");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // The port is free for an immediate bind (std sets SO_REUSEADDR), TIME_WAIT or not.
    drop(std::net::TcpListener::bind(receiver.addr).expect("the port binds again at once"));
    receiver.go_down(); // already down: a no-op

    receiver.go_up();
    assert!(receiver.is_up());
    assert_eq!(receiver.url(), url);
    assert_eq!(post(&receiver, &one_row()).status, 202);
    receiver.go_up(); // already up: a no-op

    // What came before is kept.
    assert_eq!(receiver.rows().len(), 4);
    assert_eq!(receiver.requests().len(), 4);

    // And again: down and up as often as a test needs.
    receiver.go_down();
    receiver.go_up();
    assert_eq!(post(&receiver, &one_row()).status, 202);
    assert_eq!(receiver.rows().len(), 5);
}

#[test]
fn going_down_breaks_open_connections_and_requests_in_flight() {
    use std::io::Read;

    let receiver = Receiver::start();
    // An idle connection, a request held by Hang, one waiting in a Delay.
    let mut idle = std::net::TcpStream::connect(receiver.addr).unwrap();
    idle.set_read_timeout(Some(WAIT)).unwrap();
    receiver.script([Scripted::Hang, Scripted::Delay(Duration::from_secs(30))]);
    let addr = receiver.addr;
    let hanging = thread::spawn(move || {
        HttpRequest::new("POST", "/v0/events?name=mcp_logs")
            .header("Authorization", "Bearer test-token")
            .body(one_row().as_bytes())
            .try_send_to(addr)
    });
    assert_eq!(receiver.wait_for_requests(1, WAIT).len(), 1);
    let delayed = thread::spawn(move || {
        HttpRequest::new("POST", "/v0/events?name=mcp_logs")
            .header("Authorization", "Bearer test-token")
            .body(one_row().as_bytes())
            .try_send_to(addr)
    });
    // The delayed request is logged only once its delay ends: wait for it to take its answer.
    let deadline = Instant::now() + WAIT;
    while receiver.scripted_left() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        receiver.scripted_left(),
        0,
        "the delayed request never arrived"
    );

    let started = Instant::now();
    receiver.go_down();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let mut buffer = [0; 16];
    let idle_read = idle.read(&mut buffer);
    assert!(
        matches!(&idle_read, Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset),
        "{idle_read:?}"
    );
    for (what, client) in [("hanging", hanging), ("delayed", delayed)] {
        let outcome = client.join().expect("client thread panicked");
        assert!(
            matches!(&outcome, Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset),
            "{what}: {outcome:?}"
        );
    }
    assert!(receiver.rows().is_empty());
    // The delay's task logs its request when it notices, maybe after the connection is gone.
    let requests = receiver.wait_for_requests(2, WAIT);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests.iter().all(|logged| logged.status == 0));
    assert!(
        requests[1]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("went down"),
        "{requests:?}"
    );

    // Up again, nothing of the cancelled delay lands later.
    receiver.go_up();
    assert_eq!(post(&receiver, &one_row()).status, 202);
    assert_eq!(receiver.rows().len(), 1);
}

#[test]
fn shutdown_while_down_stays_bounded() {
    let receiver = Receiver::start();
    receiver.go_down();
    let started = Instant::now();
    receiver.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn random_mix_is_reproducible_and_only_transient() {
    let mix = Scripted::random_mix(42, 10_000);
    assert_eq!(mix.len(), 10_000);
    assert_eq!(mix, Scripted::random_mix(42, 10_000));
    assert_ne!(mix, Scripted::random_mix(43, 10_000));
    // A prefix of a longer mix: `n` only says where to stop.
    assert_eq!(Scripted::random_mix(42, 100), mix[..100]);

    let mut accepted = 0;
    let mut kinds = std::collections::BTreeMap::new();
    for scripted in &mix {
        let kind = match scripted {
            Scripted::Accept => "accept".to_owned(),
            Scripted::Delay(delay) => {
                assert!(
                    (Duration::from_millis(1)..=Duration::from_millis(200)).contains(delay),
                    "{delay:?}"
                );
                "delay".to_owned()
            }
            Scripted::Status {
                status,
                retry_after,
                ..
            } => {
                assert!(
                    matches!(status, 429 | 500 | 502 | 503 | 504),
                    "non-retryable {status}"
                );
                assert_eq!(retry_after.is_some(), *status == 429);
                format!("{status} {}", retry_after.as_deref().unwrap_or(""))
            }
            Scripted::Reset => "reset".to_owned(),
            Scripted::Hang => panic!("a hang in the mix"),
        };
        *kinds.entry(kind).or_insert(0_usize) += 1;
        accepted += usize::from(scripted.stores_rows());
    }
    // Every kind shows up, in about its documented proportion.
    let expected = [
        ("accept", 55),
        ("delay", 15),
        ("429 0", 5),
        ("429 1", 1),
        ("500 ", 3),
        ("502 ", 3),
        ("503 ", 3),
        ("504 ", 3),
        ("reset", 12),
    ];
    assert_eq!(kinds.len(), expected.len(), "{kinds:?}");
    for (kind, percent) in expected {
        let count = kinds[kind];
        let ideal = percent * 100;
        assert!(
            count.abs_diff(ideal) <= ideal / 5 + 50,
            "{kind}: {count} of 10000, expected about {ideal}"
        );
    }
    assert!((6_700..=7_300).contains(&accepted), "{accepted}");

    // The mixed answers go through the receiver as scripted.
    let receiver = Receiver::start();
    receiver.script(Scripted::random_mix(7, 40));
    let mut statuses = Vec::new();
    for scripted in Scripted::random_mix(7, 40) {
        let outcome =
            HttpRequest::events(&receiver, "name=mcp_logs", &one_row()).try_send_to(receiver.addr);
        let status = outcome.map_or(0, |response| response.status);
        let expected = match scripted {
            Scripted::Accept | Scripted::Delay(_) => 202,
            Scripted::Status { status, .. } => status,
            Scripted::Reset | Scripted::Hang => 0,
        };
        assert_eq!(status, expected, "{scripted:?}");
        statuses.push(status);
    }
    let stored = statuses.iter().filter(|&&status| status == 202).count();
    assert_eq!(receiver.rows().len(), stored);
}

#[test]
fn without_kept_rows_requests_are_still_validated_and_counted() {
    let receiver = Receiver::builder().keep_rows(false).build();
    let body = ndjson(&[
        line("s1", "info", json!({ "tool": "a" })),
        line("s1", "info", json!({ "tool": "b" })),
    ]);
    assert_eq!(post(&receiver, &body).status, 202);
    // Still strict: a broken line is a 400 and accepts nothing.
    assert_eq!(post(&receiver, "{\"timestamp\": 1\n").status, 400);

    assert_eq!(receiver.wait_for_accepted_rows(2, WAIT), 2);
    assert!(receiver.rows().is_empty(), "rows were kept");
    let statuses: Vec<u16> = receiver.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [202, 400]);
}

#[test]
fn count_only_counts_lines_and_still_enforces_the_envelope() {
    let receiver = Receiver::builder().count_only(true).build();
    // Lines are counted, not parsed: what the strict mode would reject as a whole is counted.
    let unparsed = "not json\n{\"timestamp\": 1}\n";
    assert_eq!(post(&receiver, unparsed).status, 202);
    let three = one_row().repeat(3);
    let gzipped = HttpRequest::events(&receiver, "name=mcp_logs&wait=true", &three).gzipped();
    let answer = gzipped.send(&receiver);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["successful_rows"], 3);

    let rejected = [
        (
            HttpRequest::events(&receiver, "name=mcp_logs", &one_row())
                .header("Authorization", "Bearer wrong"),
            403,
        ),
        (
            HttpRequest::events(&receiver, "name=other", &one_row()),
            404,
        ),
        (
            HttpRequest::events(&receiver, "name=mcp_logs", &one_row())
                .header("Content-Encoding", "gzip"),
            400,
        ),
        (
            HttpRequest::events(&receiver, "name=mcp_logs", "a\n\nb\n"),
            400,
        ),
        (HttpRequest::events(&receiver, "name=mcp_logs", ""), 400),
        (
            HttpRequest::new("POST", "/v0/other?name=mcp_logs")
                .header("Authorization", "Bearer test-token")
                .body(one_row().as_bytes()),
            404,
        ),
    ];
    for (request, status) in rejected {
        assert_eq!(request.send(&receiver).status, status, "{request:?}");
    }

    assert_eq!(receiver.wait_for_accepted_rows(5, WAIT), 5);
    assert!(receiver.rows().is_empty(), "rows were kept");
    let statuses: Vec<u16> = receiver.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [202, 200, 403, 404, 400, 400, 400, 404]);
}
