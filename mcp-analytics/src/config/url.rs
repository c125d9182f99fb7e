//! The Events API URL: built from a base URL as users of the template write it, checked, and
//! shown in errors without anything that may hold a token.

use reqwest::Url;

use crate::error::Error;

/// `{base}/v0/events?name={datasource}`, from a base URL as users of the template write it.
pub(crate) fn events_url(base: &str, datasource: &str, wait: bool) -> Result<Url, Error> {
    let shown = shown_url(base);
    let invalid = |reason: String| Error::InvalidUrl {
        url: shown.clone(),
        reason,
    };
    let mut url = Url::parse(base.trim()).map_err(|error| {
        if base.contains("://") {
            invalid(error.to_string())
        } else {
            invalid(format!(
                "{error}; write it with its scheme, e.g. https://{}",
                base.trim()
            ))
        }
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "it must not carry a query or fragment: give the token with TB_WRITE_TOKEN".to_owned(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not carry credentials".to_owned()));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{path}/v0/events"));
    url.query_pairs_mut().append_pair("name", datasource);
    if wait {
        url.query_pairs_mut().append_pair("wait", "true");
    }
    Ok(url)
}

/// The URL as an error may show it: without query, fragment or credentials, any of which may
/// hold a token pasted in by mistake.
fn shown_url(base: &str) -> String {
    let base = base.trim().split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => base.to_owned(),
    }
}

/// Whether the URL's host is this machine, where plain `http://` exposes nothing.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(base: &str) -> Result<String, Error> {
        events_url(base, "mcp_logs", false).map(String::from)
    }

    #[test]
    fn base_urls_are_taken_as_the_template_writes_them() {
        let expected = "https://api.tinybird.co/v0/events?name=mcp_logs";
        assert_eq!(url("https://api.tinybird.co").unwrap(), expected);
        assert_eq!(url("https://api.tinybird.co/").unwrap(), expected);
        assert_eq!(url(" https://api.tinybird.co ").unwrap(), expected);
        assert_eq!(
            url("http://localhost:7181").unwrap(),
            "http://localhost:7181/v0/events?name=mcp_logs"
        );
        assert_eq!(
            url("https://proxy.example/tinybird/").unwrap(),
            "https://proxy.example/tinybird/v0/events?name=mcp_logs"
        );
        assert_eq!(
            events_url("http://127.0.0.1:1", "logs", true)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:1/v0/events?name=logs&wait=true"
        );
    }

    #[test]
    fn malformed_urls_are_clear_errors_without_their_query() {
        for (base, reason) in [
            ("api.tinybird.co", "write it with its scheme"),
            ("ftp://api.tinybird.co", "scheme must be http or https"),
            (
                "https://api.tinybird.co/?token=p.secret",
                "must not carry a query",
            ),
            (
                "https://user:p.secret@api.tinybird.co",
                "must not carry credentials",
            ),
            (
                "https://p.secret@api.tinybird.co/x",
                "must not carry credentials",
            ),
            ("https://", ""),
        ] {
            let error = url(base).unwrap_err();
            let text = error.to_string();
            assert!(matches!(error, Error::InvalidUrl { .. }), "{base}: {text}");
            assert!(text.contains(reason), "{base}: {text}");
            assert!(!text.contains("p.secret"), "{text}");
        }
    }

    #[test]
    fn loopback_hosts_are_recognized() {
        for (base, loopback) in [
            ("http://localhost:7181", true),
            ("http://127.0.0.1:1", true),
            ("http://[::1]:1", true),
            ("https://api.tinybird.co", false),
        ] {
            let url = Url::parse(base).unwrap();
            assert_eq!(is_loopback(&url), loopback, "{base}");
        }
    }
}
