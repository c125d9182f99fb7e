//! `capture(arguments, result)` on an attribute: each argument, and the returned value, as JSON
//! when its type can say how (`serde::Serialize`), else nothing.
//!
//! The macros cannot see types, so the type decides at compile time, through the same
//! `Probe` receiver the outcome and request probes use: `(&&&Probe(&value)).__mcp_analytics_json()`
//! picks the most specific of these impls that applies. A `Result` whose `Ok` type is
//! `Serialize` gives its `Ok` value (its error is the row's `error` already).

use serde::Serialize;
use serde_json::Value;

use crate::rows::outcome::Probe;

#[doc(hidden)]
pub trait ViaSerializeOk {
    fn __mcp_analytics_json(&self) -> Option<Value>;
}

impl<T: Serialize, E> ViaSerializeOk for &&Probe<'_, Result<T, E>> {
    fn __mcp_analytics_json(&self) -> Option<Value> {
        serde_json::to_value(self.0.as_ref().ok()?).ok()
    }
}

#[doc(hidden)]
pub trait ViaSerialize {
    fn __mcp_analytics_json(&self) -> Option<Value>;
}

impl<T: Serialize> ViaSerialize for &Probe<'_, T> {
    fn __mcp_analytics_json(&self) -> Option<Value> {
        serde_json::to_value(self.0).ok()
    }
}

#[doc(hidden)]
pub trait ViaNoJson {
    fn __mcp_analytics_json(&self) -> Option<Value>;
}

impl<T> ViaNoJson for Probe<'_, T> {
    fn __mcp_analytics_json(&self) -> Option<Value> {
        None
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::{ViaNoJson as _, ViaSerialize as _, ViaSerializeOk as _};
    use crate::rows::outcome::Probe;
    use serde_json::json;

    #[test]
    // The borrows are the probe: the generated code writes `&&&Probe(..)` whatever the type.
    #[allow(clippy::needless_borrow)]
    fn the_type_decides_what_is_captured() {
        struct Opaque;
        assert_eq!((&&&Probe(&3_u8)).__mcp_analytics_json(), Some(json!(3)));
        assert_eq!((&&&Probe(&Opaque)).__mcp_analytics_json(), None);
        let ok: Result<Vec<&str>, Opaque> = Ok(vec!["a"]);
        assert_eq!((&&&Probe(&ok)).__mcp_analytics_json(), Some(json!(["a"])));
        let failed: Result<u8, Opaque> = Err(Opaque);
        assert_eq!((&&&Probe(&failed)).__mcp_analytics_json(), None);
        let arguments = json!({"query": "rust"});
        assert_eq!(
            (&&Probe(&arguments)).__mcp_analytics_json(),
            Some(arguments.clone())
        );
    }
}
