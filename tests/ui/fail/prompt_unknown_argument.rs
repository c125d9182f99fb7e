use mcp_analytics::mcp_prompt;

#[mcp_prompt(title = "Greeting")]
fn greeting(name: &str) -> String {
    format!("Say hello to {name}.")
}

fn main() {
    let _ = greeting("Ann");
}
