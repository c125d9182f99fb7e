#![deny(warnings)]
#![forbid(unsafe_code)]

//! Early `return` and `?` in sync and `async` bodies, with `Box<dyn Error>` and with a custom
//! error converted by `From`: they must convert exactly as they would without the attribute.

use std::error::Error;
use std::fmt;
use std::num::ParseIntError;

use mcp_analytics::mcp_tool;

#[derive(Debug, PartialEq)]
enum ToolError {
    Parse(String),
    Negative(i64),
}

impl From<ParseIntError> for ToolError {
    fn from(error: ParseIntError) -> Self {
        ToolError::Parse(error.to_string())
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::Parse(error) => write!(f, "parse: {error}"),
            ToolError::Negative(n) => write!(f, "negative: {n}"),
        }
    }
}

#[mcp_tool]
fn parse_boxed(text: &str) -> Result<i64, Box<dyn Error>> {
    if text.is_empty() {
        return Err("empty".into());
    }
    let n: i64 = text.parse()?;
    Ok(n)
}

#[mcp_tool]
fn parse_custom(text: &str) -> Result<i64, ToolError> {
    let n: i64 = text.parse()?;
    if n < 0 {
        return Err(ToolError::Negative(n));
    }
    Ok(n)
}

#[mcp_tool]
fn first_even(values: &[u32]) -> Option<u32> {
    for value in values {
        if value % 2 == 0 {
            return Some(*value);
        }
    }
    let last = values.last()?;
    Some(last + 1)
}

#[mcp_tool]
fn unit_early(flag: bool, out: &mut Vec<&'static str>) {
    if flag {
        out.push("early");
        return;
    }
    out.push("late");
}

#[mcp_tool]
async fn parse_boxed_async(text: String) -> Result<i64, Box<dyn Error + Send + Sync>> {
    tokio::task::yield_now().await;
    if text.is_empty() {
        return Err("empty".into());
    }
    let n: i64 = text.parse()?;
    Ok(n)
}

#[mcp_tool]
async fn parse_custom_async(text: &str) -> Result<i64, ToolError> {
    let n: i64 = text.parse()?;
    tokio::task::yield_now().await;
    if n < 0 {
        return Err(ToolError::Negative(n));
    }
    Ok(n)
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(parse_boxed("5").ok(), Some(5));
    assert_eq!(parse_boxed("").unwrap_err().to_string(), "empty");
    assert!(parse_boxed("x").is_err());
    assert_eq!(parse_custom("5"), Ok(5));
    assert_eq!(parse_custom("-2"), Err(ToolError::Negative(-2)));
    assert!(matches!(parse_custom("x"), Err(ToolError::Parse(_))));
    assert_eq!(first_even(&[1, 4]), Some(4));
    assert_eq!(first_even(&[1, 3]), Some(4));
    assert_eq!(first_even(&[]), None);
    let mut out = Vec::new();
    unit_early(true, &mut out);
    unit_early(false, &mut out);
    assert_eq!(out, ["early", "late"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        assert_eq!(parse_boxed_async("7".to_owned()).await.ok(), Some(7));
        let empty = parse_boxed_async(String::new()).await;
        assert_eq!(empty.unwrap_err().to_string(), "empty");
        assert!(parse_boxed_async("x".to_owned()).await.is_err());
        assert_eq!(parse_custom_async("7").await, Ok(7));
        assert_eq!(parse_custom_async("-1").await, Err(ToolError::Negative(-1)));
        assert!(matches!(
            parse_custom_async("x").await,
            Err(ToolError::Parse(_))
        ));
    });
    assert_eq!(mcp_analytics::stats().enqueued - before, 17);
}
