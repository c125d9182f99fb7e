#![deny(warnings)]
#![forbid(unsafe_code)]

//! Generic type parameters, bounds inline and in a `where` clause, sync and `async`, on free
//! functions and on methods of a generic type.

use std::fmt::Display;
use std::marker::PhantomData;

use mcp_analytics::mcp_tool;

#[mcp_tool]
fn join<T, I>(items: I, separator: &str) -> String
where
    I: IntoIterator<Item = T>,
    T: Display,
{
    items
        .into_iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(separator)
}

#[mcp_tool]
async fn largest<T: PartialOrd + Copy + Send>(items: Vec<T>) -> Option<T>
where
    T: 'static,
{
    tokio::task::yield_now().await;
    items.into_iter().fold(None, |best, item| match best {
        Some(best) if best >= item => Some(best),
        _ => Some(item),
    })
}

struct Store<K> {
    keys: Vec<K>,
}

impl<K> Store<K>
where
    K: PartialEq + Clone,
{
    #[mcp_tool]
    fn contains<Q>(&self, key: Q) -> bool
    where
        Q: Into<K>,
    {
        self.keys.contains(&key.into())
    }
}

struct Typed<T>(PhantomData<T>);

impl<T: Default> Typed<T> {
    #[mcp_tool]
    fn make() -> T {
        T::default()
    }
}

fn main() {
    let before = mcp_analytics::stats().enqueued;
    assert_eq!(join([1, 2, 3], ", "), "1, 2, 3");
    assert_eq!(join(vec!["a"], "-"), "a");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    assert_eq!(runtime.block_on(largest(vec![3, 9, 4])), Some(9));
    assert_eq!(runtime.block_on(largest::<f64>(Vec::new())), None);
    let store = Store {
        keys: vec!["a".to_owned()],
    };
    assert!(store.contains("a"));
    assert!(!store.contains("b"));
    assert_eq!(Typed::<u8>::make(), 0);
    let _ = Typed::<String>(PhantomData);
    assert_eq!(mcp_analytics::stats().enqueued - before, 7);
}
