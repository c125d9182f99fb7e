//! Fields: named values a row carries under its `record`'s `fields` key. A log line's are the
//! event's own; a call's are the dimensions you give it: `fields(..)` on the attribute, a
//! [`Dimensions`](crate::Dimensions) scope, or the server wrapper's `fields_by` callback.
//!
//! Values keep their JSON type (numbers, booleans, strings); text is cut to
//! [`MAX_FIELD_LEN`], and a call keeps at most [`MAX_FIELDS`] of them: the rest are counted
//! under a key of their own, so a cut is visible in the data rather than silent.

use std::fmt;
use std::sync::Arc;

use super::text::{MAX_ERROR_LEN, bounded};

/// Longest text kept per field value, in bytes; a longer text is cut at a character boundary
/// and ends in `…`.
///
/// ```
/// assert!(mcp_analytics::limits::MAX_FIELD_LEN >= 256);
/// ```
pub const MAX_FIELD_LEN: usize = MAX_ERROR_LEN;

/// Most fields one call row keeps, whatever their source; how many others there were is
/// written under the key `…`.
///
/// ```
/// assert!(mcp_analytics::limits::MAX_FIELDS >= 16);
/// ```
pub const MAX_FIELDS: usize = 32;

/// The key under which a call's `fields` object counts the fields it had no room for.
pub(crate) const FIELDS_CUT_KEY: &str = "…";

/// Fields in the order recorded. Names are `'static`, as `tracing`'s are: they are written in
/// code, and a row carries a pointer rather than a copy.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields(pub(crate) Vec<(&'static str, FieldValue)>);

impl Fields {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `name`, replacing an earlier value of the same name: the most specific source
    /// wins.
    pub(crate) fn set(&mut self, name: &'static str, value: FieldValue) {
        match self.0.iter_mut().find(|(known, _)| *known == name) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((name, value)),
        }
    }
}

/// What the calls of a [`Dimensions`](crate::Dimensions) scope inherit, resolved once on entry:
/// the user as it will be recorded (hashed if so configured), the fields merged with the
/// enclosing scope's.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub(crate) user: Option<Arc<str>>,
    pub(crate) fields: Fields,
}

/// A field's value, as JSON will hold it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A JSON string.
    Text(Box<str>),
    /// A JSON number.
    Signed(i64),
    /// A JSON number.
    Unsigned(u64),
    /// A JSON number; NaN and infinities, which JSON lacks, are written as `null`.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
}

impl FieldValue {
    /// A value's `Display` text, bounded: what `%value` records.
    ///
    /// ```
    /// use mcp_analytics::FieldValue;
    ///
    /// let ip: std::net::Ipv4Addr = "10.0.0.1".parse().unwrap();
    /// assert_eq!(FieldValue::display(&ip), FieldValue::Text("10.0.0.1".into()));
    /// ```
    pub fn display(value: &dyn fmt::Display) -> Self {
        Self::Text(bounded(value, MAX_FIELD_LEN))
    }

    /// A value's `Debug` text, bounded: what `?value` records.
    ///
    /// ```
    /// use mcp_analytics::FieldValue;
    ///
    /// assert_eq!(FieldValue::debug(&Some(3)), FieldValue::Text("Some(3)".into()));
    /// ```
    pub fn debug(value: &dyn fmt::Debug) -> Self {
        struct AsDisplay<'a>(&'a dyn fmt::Debug);
        impl fmt::Display for AsDisplay<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.0, f)
            }
        }
        Self::display(&AsDisplay(value))
    }
}

/// A value a field records keeping its JSON type: integers, floats, `bool`, text (and
/// references to them). Other types are recorded with `%value` (`Display`) or `?value`
/// (`Debug`).
///
/// ```
/// use mcp_analytics::{FieldValue, ToFieldValue};
///
/// assert_eq!(3_u8.to_field_value(), FieldValue::Unsigned(3));
/// assert_eq!("eu-west".to_field_value(), FieldValue::Text("eu-west".into()));
/// assert_eq!(false.to_field_value(), FieldValue::Bool(false));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a number, a bool or text, the types a field records as they are",
    label = "not a number, a bool or text",
    note = "write `%value` to record its `Display` text, or `?value` for its `Debug` text"
)]
pub trait ToFieldValue {
    /// The value as a field holds it.
    fn to_field_value(&self) -> FieldValue;
}

impl<T: ToFieldValue + ?Sized> ToFieldValue for &T {
    fn to_field_value(&self) -> FieldValue {
        (**self).to_field_value()
    }
}

macro_rules! to_field_value {
    ($variant:ident as $wide:ty: $($ty:ty),*) => {$(
        impl ToFieldValue for $ty {
            fn to_field_value(&self) -> FieldValue {
                FieldValue::$variant(<$wide>::from(*self))
            }
        }
    )*};
}

to_field_value!(Signed as i64: i8, i16, i32, i64);
to_field_value!(Unsigned as u64: u8, u16, u32, u64);
to_field_value!(Float as f64: f32, f64);
to_field_value!(Bool as bool: bool);

impl ToFieldValue for isize {
    fn to_field_value(&self) -> FieldValue {
        // 64 bits at most on every target Rust supports; the text otherwise.
        i64::try_from(*self).map_or_else(|_| FieldValue::display(self), FieldValue::Signed)
    }
}

impl ToFieldValue for usize {
    fn to_field_value(&self) -> FieldValue {
        u64::try_from(*self).map_or_else(|_| FieldValue::display(self), FieldValue::Unsigned)
    }
}

impl ToFieldValue for str {
    fn to_field_value(&self) -> FieldValue {
        FieldValue::display(&self)
    }
}

impl ToFieldValue for String {
    fn to_field_value(&self) -> FieldValue {
        FieldValue::display(self)
    }
}

impl ToFieldValue for std::borrow::Cow<'_, str> {
    fn to_field_value(&self) -> FieldValue {
        FieldValue::display(self)
    }
}

impl ToFieldValue for FieldValue {
    fn to_field_value(&self) -> FieldValue {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_json_type() {
        assert_eq!((-3_i32).to_field_value(), FieldValue::Signed(-3));
        assert_eq!(7_usize.to_field_value(), FieldValue::Unsigned(7));
        assert_eq!(0.5_f32.to_field_value(), FieldValue::Float(0.5));
        assert_eq!((&&true).to_field_value(), FieldValue::Bool(true));
        let owned = String::from("pro");
        assert_eq!(owned.to_field_value(), FieldValue::Text("pro".into()));
        assert_eq!((&&owned).to_field_value(), FieldValue::Text("pro".into()));
    }

    #[test]
    fn text_is_bounded() {
        let long = "x".repeat(MAX_FIELD_LEN * 2);
        let FieldValue::Text(text) = long.as_str().to_field_value() else {
            panic!("text stays text");
        };
        assert!(text.len() <= MAX_FIELD_LEN && text.ends_with('…'));
    }

    #[test]
    fn a_later_value_replaces_an_earlier_one_of_the_same_name() {
        let mut fields = Fields::default();
        fields.set("tenant", FieldValue::Text("a".into()));
        fields.set("plan", FieldValue::Signed(1));
        fields.set("tenant", FieldValue::Text("b".into()));
        assert_eq!(
            fields.0,
            vec![
                ("tenant", FieldValue::Text("b".into())),
                ("plan", FieldValue::Signed(1))
            ]
        );
    }
}
