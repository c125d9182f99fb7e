#![deny(warnings)]
#![forbid(unsafe_code)]

//! Sync methods returning a borrow of `self` or of an argument: `&mut self -> &mut T`,
//! `&mut T -> &mut U`, and `&self -> &T` through a guard.

use std::collections::HashMap;

use mcp_analytics::mcp_tool;

#[derive(Default)]
struct Registry {
    entries: HashMap<String, u32>,
}

impl Registry {
    #[mcp_tool]
    fn entry(&mut self, key: &str) -> &mut u32 {
        self.entries.entry(key.to_owned()).or_default()
    }

    #[mcp_tool]
    fn get(&self, key: &str) -> Option<&u32> {
        self.entries.get(key)
    }
}

#[mcp_tool]
fn last_mut(items: &mut [u8]) -> Option<&mut u8> {
    items.last_mut()
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    let mut registry = Registry::default();
    *registry.entry("a") += 2;
    assert_eq!(registry.get("a"), Some(&2));
    let mut items = [1, 2];
    if let Some(last) = last_mut(&mut items) {
        *last = 9;
    }
    assert_eq!(items, [1, 9]);
    assert_eq!(mcp_analytics::stats().enqueued - before, 3);
}
