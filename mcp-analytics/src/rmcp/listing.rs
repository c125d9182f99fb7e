//! What a server advertises: the names a `tools/list` (or `prompts/list`, `resources/list`,
//! `resources/templates/list`) returned, recorded with the listing's row when they differ from
//! what the same listing of the same server returned last in this process. So the data project
//! knows every tool, prompt and resource a server offers, called or not, at the cost of one
//! digest per listing.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use rmcp::model::PaginatedRequestParams;

use super::sites::{Method, ServerSites};
use crate::rows::call::CallRow;
use crate::rows::text::{MAX_NAME_LEN, bounded_str};

/// Most names kept of one listing: a server advertising more is cut, visibly (`…` as the last).
pub(super) const MAX_LISTED: usize = 1000;

/// Most listings remembered (servers × methods × pages): the cursor comes from the client, and
/// must not grow the map without bound. Listings beyond it are not recorded.
const MAX_LISTINGS: usize = 1024;

/// A listing: which server (its callsites' address), which method, which page (the cursor).
type Listing = (usize, Method, Option<String>);

/// The digest of each listing's last names.
static LAST: Mutex<Option<HashMap<Listing, u64>>> = Mutex::new(None);

/// Adds what a listing advertised (`names`) to its row, when it changed.
pub(super) fn listed<'a>(
    sites: &'static ServerSites,
    method: Method,
    page: Option<&str>,
    names: impl Iterator<Item = &'a str> + Clone,
    row: &mut CallRow,
) {
    if let Some(details) = row.details.as_deref_mut() {
        details.listed = changed(sites, method, page, names);
    }
}

/// The page a listing request asks for: its cursor (`None`: the first).
pub(super) fn page(request: Option<&PaginatedRequestParams>) -> Option<String> {
    request.and_then(|request| request.cursor.clone())
}

/// The names to record with a listing's row: `Some` when they changed since the last time.
pub(super) fn changed<'a>(
    sites: &'static ServerSites,
    method: Method,
    page: Option<&str>,
    names: impl Iterator<Item = &'a str> + Clone,
) -> Option<Box<[Box<str>]>> {
    let mut hasher = DefaultHasher::new();
    for name in names.clone() {
        name.hash(&mut hasher);
    }
    let digest = hasher.finish();
    let key = (
        std::ptr::from_ref(sites) as usize,
        method,
        page.map(str::to_owned),
    );
    // Untracked (the map is full) or unchanged: nothing to record.
    let skip = {
        let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
        let last = last.get_or_insert_with(HashMap::new);
        (last.len() >= MAX_LISTINGS && !last.contains_key(&key))
            || last.insert(key, digest) == Some(digest)
    };
    if skip {
        return None;
    }
    let mut listed: Vec<Box<str>> = names
        .take(MAX_LISTED + 1)
        .map(|name| bounded_str(name, MAX_NAME_LEN).into())
        .collect();
    if listed.len() > MAX_LISTED {
        listed.truncate(MAX_LISTED);
        listed.push("…".into());
    }
    Some(listed.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    static SITES: ServerSites = ServerSites::new("listing-test", "0.0.0");

    #[test]
    fn a_listing_is_recorded_when_it_changes() {
        let names = ["add", "divide"];
        let first = changed(&SITES, Method::ListTools, None, names.iter().copied());
        assert_eq!(first.as_deref().map(<[_]>::len), Some(2));
        assert!(changed(&SITES, Method::ListTools, None, names.iter().copied()).is_none());
        let other = ["add"];
        assert!(changed(&SITES, Method::ListTools, None, other.iter().copied()).is_some());
        assert!(
            changed(&SITES, Method::ListPrompts, None, other.iter().copied()).is_some(),
            "each listing on its own"
        );
    }

    #[test]
    fn a_huge_listing_is_cut_visibly() {
        let names: Vec<String> = (0..MAX_LISTED + 5).map(|i| format!("tool-{i}")).collect();
        let listed = changed(
            &SITES,
            Method::ListResources,
            None,
            names.iter().map(String::as_str),
        )
        .unwrap();
        assert_eq!(listed.len(), MAX_LISTED + 1);
        assert_eq!(&*listed[MAX_LISTED], "…");
    }
}
