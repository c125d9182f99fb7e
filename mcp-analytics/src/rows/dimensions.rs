//! Dimensions set for a whole scope: the user a piece of code acts for, and fields such as a
//! request's tenant, inherited by every instrumented call made inside it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::fields::{Fields, Resolved, ToFieldValue};
use super::scope::{self, Scoped};
use crate::capture::user;

/// The user and fields of the calls made inside a scope.
///
/// Build it, then run code inside it: [`in_scope`](Dimensions::in_scope) around a closure,
/// [`scope`](Dimensions::scope) around a future. Scopes nest: an inner scope adds to the
/// outer one's fields (replacing those of the same name) and may name another user. A call's
/// own `user = ..` and `fields(..)` come first, then the innermost scope's, then what the rmcp
/// server wrapper resolved for the request.
///
/// ```
/// use mcp_analytics::{Dimensions, mcp_tool};
///
/// #[mcp_tool]
/// fn report(month: u8) -> String {
///     format!("report for {month}")
/// }
///
/// // Say, in auth middleware: every call inside is attributed to this user and tenant.
/// let answer = Dimensions::new()
///     .user("user_2NNEqL2nrIRdJ194ndJqAHwEfxC")
///     .field("tenant", "acme")
///     .field("seats", 40)
///     .in_scope(|| report(11));
/// assert_eq!(answer, "report for 11");
/// ```
///
/// The user is recorded as given, or as a salted hash with
/// [`Builder::hash_users`](crate::Builder::hash_users). Like everything captured on request,
/// it is recorded only once analytics has started (`init`): before, whether to hash it is not
/// known.
#[derive(Clone, Default)]
#[must_use = "dimensions do nothing until code runs inside them: `in_scope` or `scope`"]
pub struct Dimensions {
    user: Option<Box<str>>,
    fields: Fields,
}

impl Dimensions {
    /// No user, no fields.
    ///
    /// ```
    /// let none = mcp_analytics::Dimensions::new();
    /// assert_eq!(none.in_scope(|| 1), 1);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The user the calls act for (any `Display`: an id, a subject claim). An empty one names
    /// no user.
    ///
    /// ```
    /// let dimensions = mcp_analytics::Dimensions::new().user(42);
    /// # drop(dimensions);
    /// ```
    pub fn user(mut self, user: impl fmt::Display) -> Self {
        self.user = Some(user::bounded(&user));
        self
    }

    /// A field recorded on each call: numbers, booleans and text keep their JSON type (see
    /// [`ToFieldValue`]; pass [`FieldValue::display`](crate::FieldValue::display) for other
    /// types). A call keeps [`MAX_FIELDS`](crate::limits::MAX_FIELDS) fields at most.
    ///
    /// ```
    /// let dimensions = mcp_analytics::Dimensions::new()
    ///     .field("region", "eu-west-1")
    ///     .field("beta", true);
    /// # drop(dimensions);
    /// ```
    pub fn field(mut self, name: &'static str, value: impl ToFieldValue) -> Self {
        self.fields.set(name, value.to_field_value());
        self
    }

    /// Runs `f` inside these dimensions, on this thread.
    ///
    /// ```
    /// let sum = mcp_analytics::Dimensions::new().field("plan", "pro").in_scope(|| 1 + 1);
    /// assert_eq!(sum, 2);
    /// ```
    pub fn in_scope<R>(self, f: impl FnOnce() -> R) -> R {
        scope::in_dimensions(self.resolve(), f)
    }

    /// Runs `future` inside these dimensions, whatever thread or executor polls it.
    ///
    /// ```
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # runtime.block_on(async {
    /// let answer = mcp_analytics::Dimensions::new()
    ///     .user("ada")
    ///     .scope(async { "served" })
    ///     .await;
    /// assert_eq!(answer, "served");
    /// # });
    /// ```
    pub fn scope<F: Future>(self, future: F) -> Scoped<'static, F> {
        Scoped::dimensions(self.resolve(), future)
    }

    /// A request's dimensions, as the rmcp server wrapper's `dimensions_by` gives them: the
    /// user as recorded, and the fields.
    #[cfg_attr(not(feature = "rmcp"), allow(dead_code))]
    pub(crate) fn resolve_for_request(self) -> (Option<Arc<str>>, Fields) {
        (self.user.as_deref().and_then(user::recorded), self.fields)
    }

    /// The scope's dimensions as its calls inherit them: on top of the enclosing scope's,
    /// which are read now.
    fn resolve(self) -> Arc<Resolved> {
        let outer = scope::inherited_dimensions();
        let mut fields = outer
            .as_ref()
            .map(|outer| outer.fields.clone())
            .unwrap_or_default();
        for (name, value) in self.fields.0 {
            fields.set(name, value);
        }
        let user = match self.user {
            Some(raw) => user::recorded(&raw),
            None => outer.and_then(|outer| outer.user.clone()),
        };
        Arc::new(Resolved { user, fields })
    }
}

impl fmt::Debug for Dimensions {
    // The user may be personal data: say whether there is one, not who.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dimensions")
            .field("user", &self.user.as_ref().map(|_| "<set>"))
            .field(
                "fields",
                &self.fields.0.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}
