use mcp_analytics::mcp_tool;

// A field without a value.
#[mcp_tool(fields(region))]
fn no_value(region: &str) {
    let _ = region;
}

// One name twice.
#[mcp_tool(fields(region = region, region = "eu"))]
fn duplicate_field(region: &str) {
    let _ = region;
}

// `fields` as a value.
#[mcp_tool(fields = region)]
fn fields_as_value(region: &str) {
    let _ = region;
}

// A list where a value goes.
#[mcp_tool(name("add"))]
fn name_as_list() {}

// A literal user.
#[mcp_tool(user = 42)]
fn literal_user() {}

fn main() {}
