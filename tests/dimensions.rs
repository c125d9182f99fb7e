//! Your own dimensions on a call: `fields(..)` and `user = ..` on the attribute, and
//! [`Dimensions`] scopes around code, as delivered by the real pipeline to memory and read
//! through the receiver's schema checks.
//!
//! Each test takes its turn on the pipeline ([`common::MemoryScenario`]), since some configure
//! it differently (`hash_users`).

mod common;

use std::fmt;

use mcp_analytics::{Dimensions, mcp_tool};
use mcp_analytics_receiver::Row;
use serde_json::json;

use common::MemoryScenario;

/// The rows of tool `name` delivered to `scenario`.
fn rows_of(scenario: &MemoryScenario, name: &str) -> Vec<Row> {
    scenario.flush();
    scenario
        .memory
        .rows()
        .into_iter()
        .filter(|row| row.record_str("tool") == name)
        .collect()
}

fn only_row(scenario: &MemoryScenario, name: &str) -> Row {
    let mut rows = rows_of(scenario, name);
    assert_eq!(rows.len(), 1, "one row for `{name}`: {rows:#?}");
    rows.remove(0)
}

struct Request {
    region: String,
    seats: u32,
    plan: Plan,
    tags: Vec<&'static str>,
}

/// Recorded with `%`: only `Display`.
struct Plan(&'static str);

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plan:{}", self.0)
    }
}

#[mcp_tool(fields(
    region = request.region,
    seats = request.seats,
    debt = -3_i64,
    ratio = 0.25,
    beta = true,
    plan = %request.plan,
    tags = ?request.tags,
    "plan-tier" = "gold",
    account.kind = "team",
))]
fn quote(request: &Request) -> usize {
    // The fields were read by reference: the body still has the request.
    request.tags.len()
}

#[test]
fn fields_keep_their_json_type_and_are_read_by_reference() {
    let scenario = MemoryScenario::start(|builder| builder);
    let request = Request {
        region: "eu-west-1".into(),
        seats: 40,
        plan: Plan("pro"),
        tags: vec!["a", "b"],
    };
    assert_eq!(quote(&request), 2);
    let row = only_row(&scenario, "quote");
    assert_eq!(
        row.record["fields"],
        json!({
            "region": "eu-west-1",
            "seats": 40,
            "debt": -3,
            "ratio": 0.25,
            "beta": true,
            "plan": "plan:pro",
            "tags": "[\"a\", \"b\"]",
            "plan-tier": "gold",
            "account.kind": "team",
        })
    );
    assert_eq!(row.record.get("user"), None, "no user unless one is given");
}

#[mcp_tool(user = caller, fields(tenant = "from-call"))]
fn act_as(caller: &str) -> &'static str {
    "done"
}

#[mcp_tool]
fn plain_tool() {}

#[test]
fn a_call_takes_its_scopes_dimensions_and_its_own_come_first() {
    let scenario = MemoryScenario::start(|builder| builder);
    Dimensions::new()
        .user("scope-user")
        .field("tenant", "from-scope")
        .field("region", "us")
        .in_scope(|| {
            plain_tool();
            act_as("call-user");
            Dimensions::new()
                .field("region", "eu")
                .field("depth", 2)
                .in_scope(plain_tool);
        });
    plain_tool();

    let rows = rows_of(&scenario, "plain_tool");
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(rows[0].record_str("user"), "scope-user");
    assert_eq!(
        rows[0].record["fields"],
        json!({"tenant": "from-scope", "region": "us"})
    );
    assert_eq!(
        rows[1].record_str("user"),
        "scope-user",
        "an inner scope keeps the outer user"
    );
    assert_eq!(
        rows[1].record["fields"],
        json!({"tenant": "from-scope", "region": "eu", "depth": 2}),
        "an inner scope adds to the outer one, replacing fields of the same name"
    );
    assert_eq!(rows[2].record.get("user"), None, "outside the scope: none");
    assert_eq!(rows[2].record.get("fields"), None);

    let row = only_row(&scenario, "act_as");
    assert_eq!(
        row.record_str("user"),
        "call-user",
        "the call's own user first"
    );
    assert_eq!(
        row.record["fields"],
        json!({"tenant": "from-call", "region": "us"})
    );
}

#[mcp_tool]
async fn async_tool() -> u8 {
    tokio::task::yield_now().await;
    7
}

#[test]
fn an_async_scope_follows_its_future() {
    let scenario = MemoryScenario::start(|builder| builder);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let answer = runtime.block_on(async {
        let task = Dimensions::new()
            .user("ada")
            .field("tenant", "acme")
            .scope(async { async_tool().await + async_tool().await });
        tokio::spawn(task).await.unwrap()
    });
    assert_eq!(answer, 14);
    let rows = rows_of(&scenario, "async_tool");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for row in rows {
        assert_eq!(row.record_str("user"), "ada");
        assert_eq!(row.record["fields"], json!({"tenant": "acme"}));
    }
}

#[test]
fn fields_beyond_the_limit_are_counted_not_dropped_silently() {
    let scenario = MemoryScenario::start(|builder| builder);
    const NAMES: [&str; 40] = [
        "f00", "f01", "f02", "f03", "f04", "f05", "f06", "f07", "f08", "f09", "f10", "f11", "f12",
        "f13", "f14", "f15", "f16", "f17", "f18", "f19", "f20", "f21", "f22", "f23", "f24", "f25",
        "f26", "f27", "f28", "f29", "f30", "f31", "f32", "f33", "f34", "f35", "f36", "f37", "f38",
        "f39",
    ];
    let dimensions = NAMES
        .iter()
        .enumerate()
        .fold(Dimensions::new(), |dimensions, (at, name)| {
            dimensions.field(name, at)
        });
    dimensions.in_scope(plain_tool);
    let row = only_row(&scenario, "plain_tool");
    let fields = row.record["fields"].as_object().unwrap();
    assert_eq!(fields.len(), mcp_analytics::limits::MAX_FIELDS + 1);
    assert_eq!(fields["f00"], 0);
    assert_eq!(fields["f31"], 31);
    assert!(!fields.contains_key("f32"));
    assert_eq!(fields["…"], 8, "how many were left out");
}

#[test]
fn users_are_hashed_with_the_servers_key_when_asked() {
    let scenario = MemoryScenario::start(|builder| builder.hash_users("k".repeat(32)));
    act_as("user_2NNEqL2nrIRdJ194ndJqAHwEfxC");
    act_as("user_2NNEqL2nrIRdJ194ndJqAHwEfxC");
    act_as("someone-else");
    Dimensions::new()
        .user("user_2NNEqL2nrIRdJ194ndJqAHwEfxC")
        .in_scope(plain_tool);
    let rows = rows_of(&scenario, "act_as");
    let users: Vec<&str> = rows.iter().map(|row| row.record_str("user")).collect();
    assert_eq!(users.len(), 3);
    assert_eq!(users[0], users[1], "one user, one hash");
    assert_ne!(users[0], users[2]);
    assert!(
        users
            .iter()
            .all(|user| user.len() == 32 && user.bytes().all(|b| b.is_ascii_hexdigit()))
    );
    assert_eq!(
        only_row(&scenario, "plain_tool").record_str("user"),
        users[0],
        "a scope's user hashes the same"
    );
    let lines = scenario.memory.rows();
    assert!(
        lines
            .iter()
            .all(|row| !row.raw.contains("user_2NNEqL2nrIRdJ194ndJqAHwEfxC")),
        "the raw id is nowhere on the wire"
    );
}

#[test]
fn users_recorded_before_init_are_left_out() {
    // A process of its own: nothing may have started the pipeline yet.
    common::in_own_process("users_recorded_before_init_are_left_out", &[], || {
        act_as("early-user");
        let memory = common::Memory::new();
        let _analytics = memory.builder().try_init().expect("starts");
        act_as("late-user");
        mcp_analytics::flush(std::time::Duration::from_secs(10)).expect("flush");
        let users: Vec<String> = memory
            .rows()
            .iter()
            .filter(|row| row.record_str("tool") == "act_as")
            .map(|row| row.record_str("user").to_owned())
            .collect();
        assert_eq!(users, ["", "late-user"]);
    });
}
