//! The Events API URL: built from a base URL as users of the template write it, checked, and
//! shown in errors without anything that may hold a token.

use http::Uri;

use crate::error::Error;

/// `{base}/v0/events?name={datasource}`, from a base URL as users of the template write it.
///
/// `datasource` is checked already (letters, digits and `_`), so it needs no escaping.
pub(crate) fn events_url(base: &str, datasource: &str, wait: bool) -> Result<Uri, Error> {
    let shown = shown_url(base);
    let invalid = |reason: String| Error::InvalidUrl {
        url: shown.clone(),
        reason,
    };
    let trimmed = base.trim();
    // `Uri` takes a fragment without complaint and drops it; a URL with one was mistyped.
    if trimmed.contains('#') {
        return Err(invalid(
            "it must not carry a query or fragment: give the token with TB_WRITE_TOKEN".to_owned(),
        ));
    }
    let uri = trimmed
        .parse::<Uri>()
        .map_err(|error| invalid(error.to_string()))?;
    let Some(scheme) = uri.scheme_str() else {
        return Err(invalid(format!(
            "it has no scheme; write it with its scheme, e.g. https://{trimmed}"
        )));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(invalid(format!(
            "the scheme must be http or https, not {scheme}"
        )));
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid("it has no host".to_owned()));
    };
    if authority.as_str().contains('@') {
        return Err(invalid("it must not carry credentials".to_owned()));
    }
    if authority.host().is_empty() {
        return Err(invalid("it has no host".to_owned()));
    }
    if uri.query().is_some() {
        return Err(invalid(
            "it must not carry a query or fragment: give the token with TB_WRITE_TOKEN".to_owned(),
        ));
    }
    if scheme == "https" && crate::delivery::connect::TLS.is_none() {
        return Err(invalid(
            "https:// needs one of mcp-analytics's TLS features (rustls, rustls-aws-lc, \
             native-tls), and this build has none"
                .to_owned(),
        ));
    }
    let path = uri.path().trim_end_matches('/');
    let wait = if wait { "&wait=true" } else { "" };
    format!("{scheme}://{authority}{path}/v0/events?name={datasource}{wait}")
        .parse()
        .map_err(|error: http::uri::InvalidUri| invalid(error.to_string()))
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
pub(crate) fn is_loopback(url: &Uri) -> bool {
    match url.host() {
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
        events_url(base, "mcp_logs", false).map(|url| url.to_string())
    }

    #[test]
    #[cfg(not(any(feature = "rustls", feature = "rustls-aws-lc", feature = "native-tls")))]
    fn https_without_a_tls_feature_is_a_clear_error() {
        let error = url("https://api.tinybird.co").unwrap_err().to_string();
        assert!(
            error.contains("needs one of mcp-analytics's TLS features"),
            "{error}"
        );
        assert!(url("http://localhost:7181").is_ok());
    }

    #[test]
    #[cfg(any(feature = "rustls", feature = "rustls-aws-lc", feature = "native-tls"))]
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
                .to_string(),
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
            (
                "https://api.tinybird.co/#p.secret",
                "must not carry a query",
            ),
            ("https://api.tinybird.co/v0 x", ""),
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
            let url = base.parse::<Uri>().unwrap();
            assert_eq!(is_loopback(&url), loopback, "{base}");
        }
    }
}
