#![deny(warnings)]
#![forbid(unsafe_code)]

//! Const generic parameters, with a default on the type and in `async fn`.

use mcp_analytics::mcp_tool;

#[mcp_tool]
fn sum<const N: usize>(values: [u32; N]) -> u32 {
    values.iter().sum()
}

#[mcp_tool]
fn repeat<const N: usize, T: Copy>(value: T) -> [T; N] {
    [value; N]
}

struct Buffer<const CAP: usize = 4> {
    items: Vec<u8>,
}

impl<const CAP: usize> Buffer<CAP> {
    #[mcp_tool]
    fn push(&mut self, item: u8) -> Result<usize, String> {
        if self.items.len() == CAP {
            return Err(format!("full at {CAP}"));
        }
        self.items.push(item);
        Ok(self.items.len())
    }
}

#[mcp_tool]
async fn width<const N: usize>() -> usize {
    tokio::task::yield_now().await;
    N
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(sum([1, 2, 3]), 6);
    assert_eq!(repeat::<3, char>('a'), ['a', 'a', 'a']);
    let mut buffer: Buffer<1> = Buffer { items: Vec::new() };
    assert_eq!(buffer.push(1), Ok(1));
    assert_eq!(buffer.push(2), Err("full at 1".to_owned()));
    let default: Buffer = Buffer { items: Vec::new() };
    assert!(default.items.is_empty());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(width::<8>()), 8);
    assert_eq!(mcp_analytics::stats().enqueued - before, 5);
}
