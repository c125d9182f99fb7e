use mcp_analytics::mcp_tool;

struct Context {
    session: Option<String>,
}

#[mcp_tool(session = context.session)]
async fn echo(context: Context, text: String) -> String {
    drop(context);
    text
}

fn main() {
    let _ = echo(Context { session: None }, String::new());
}
