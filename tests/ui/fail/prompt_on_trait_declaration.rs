use mcp_analytics::mcp_prompt;

trait Prompts {
    #[mcp_prompt(name = "greeting")]
    async fn greeting(&self, name: &str) -> String;
}

struct Server;

impl Prompts for Server {
    async fn greeting(&self, name: &str) -> String {
        format!("Say hello to {name}.")
    }
}

fn main() {
    let _ = Server.greeting("Ann");
}
