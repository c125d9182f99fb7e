use mcp_analytics::mcp_prompt;

#[mcp_prompt(name)]
fn greeting(name: &str) -> String {
    format!("Say hello to {name}.")
}

fn main() {
    let _ = greeting("Ann");
}
