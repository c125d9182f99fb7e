//! How connections to the Events API are opened: over TCP, directly or through the HTTP proxy
//! the environment names, then through the TLS stack the crate's features chose.
//!
//! With several TLS features enabled, the one least likely to be a default wins: `native-tls`,
//! then `rustls-aws-lc`, then `rustls`. With none, there is no TLS, and `https://` URLs are
//! refused when the configuration is checked.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::{Authority, Scheme};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The TLS stack this build uses, as its feature is named, if any.
pub(crate) const TLS: Option<&str> = if cfg!(feature = "native-tls") {
    Some("native-tls")
} else if cfg!(feature = "rustls-aws-lc") {
    Some("rustls-aws-lc")
} else if cfg!(feature = "rustls") {
    Some("rustls")
} else {
    None
};

/// What the HTTP client connects with: [`Route`] under the chosen TLS stack.
#[cfg(feature = "native-tls")]
pub(crate) type Connector = hyper_tls::HttpsConnector<Route>;
/// What the HTTP client connects with: [`Route`] under the chosen TLS stack.
#[cfg(all(
    any(feature = "rustls", feature = "rustls-aws-lc"),
    not(feature = "native-tls")
))]
pub(crate) type Connector = hyper_rustls::HttpsConnector<Route>;
/// What the HTTP client connects with: plain TCP, as no TLS feature is enabled.
#[cfg(not(any(feature = "rustls", feature = "rustls-aws-lc", feature = "native-tls")))]
pub(crate) type Connector = Route;

/// The connector for requests to `url`, proxied as the environment says.
pub(crate) fn connector(url: &Uri, connect_timeout: Duration) -> Result<Connector, BoxError> {
    tls(Route::to(url, &Matcher::from_env(), connect_timeout))
}

#[cfg(feature = "native-tls")]
fn tls(route: Route) -> Result<Connector, BoxError> {
    let tls = native_tls::TlsConnector::new()?;
    Ok(hyper_tls::HttpsConnector::from((route, tls.into())))
}

#[cfg(all(
    any(feature = "rustls", feature = "rustls-aws-lc"),
    not(feature = "native-tls")
))]
fn tls(route: Route) -> Result<Connector, BoxError> {
    // Mozilla's roots, compiled in: the same trust on every machine, whatever its store holds.
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(route))
}

#[cfg(all(feature = "rustls-aws-lc", not(feature = "native-tls")))]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

#[cfg(all(
    feature = "rustls",
    not(feature = "rustls-aws-lc"),
    not(feature = "native-tls")
))]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(not(any(feature = "rustls", feature = "rustls-aws-lc", feature = "native-tls")))]
#[expect(
    clippy::unnecessary_wraps,
    reason = "the same signature as with a TLS stack, whose setup can fail"
)]
fn tls(route: Route) -> Result<Connector, BoxError> {
    Ok(route)
}

/// How TCP connections reach the service: directly, or through the HTTP proxy that
/// `HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY` names for its URL (unless `NO_PROXY` exempts it).
#[derive(Clone)]
pub(crate) enum Route {
    Direct(HttpConnector),
    /// A CONNECT tunnel through the proxy, for `http://` URLs too: one way for both schemes,
    /// and the token then goes no further in clear than it would without the proxy.
    Tunnel(Tunnel<HttpConnector>),
    /// A proxy this client cannot go through (SOCKS, or `https://`): every connection fails
    /// saying so, rather than bypassing a proxy the host requires.
    Unsupported(Scheme),
}

impl Route {
    fn to(url: &Uri, proxies: &Matcher, connect_timeout: Duration) -> Self {
        let mut tcp = HttpConnector::new();
        // The TLS layer above handles `https://`; this one only opens the TCP connection.
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(connect_timeout));
        // Requests are single writes of a small header and a body: no point in Nagle's delay.
        tcp.set_nodelay(true);
        let Some(proxy) = proxies.intercept(url) else {
            return Route::Direct(tcp);
        };
        match proxy.uri().scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => {
                let tunnel = Tunnel::new(proxy.uri().clone(), tcp);
                Route::Tunnel(match proxy.basic_auth() {
                    Some(auth) => tunnel.with_auth(auth.clone()),
                    None => tunnel,
                })
            }
            scheme => Route::Unsupported(scheme.cloned().unwrap_or(Scheme::HTTP)),
        }
    }
}

impl Service<Uri> for Route {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Both connectors are always ready: each call opens its own connection.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        match self {
            Route::Direct(tcp) => {
                let connecting = tcp.call(destination);
                Box::pin(async move { Ok(connecting.await?) })
            }
            Route::Tunnel(tunnel) => {
                let connecting = tunnel.call(with_port(destination));
                Box::pin(async move { Ok(connecting.await?) })
            }
            Route::Unsupported(scheme) => {
                let error = format!("the proxy's scheme, {scheme}, is not supported (only http)");
                Box::pin(std::future::ready(Err(error.into())))
            }
        }
    }
}

/// `destination` with its scheme's port made explicit: the tunnel assumes 443 without one.
fn with_port(destination: Uri) -> Uri {
    let (Some(authority), None) = (destination.authority(), destination.port_u16()) else {
        return destination;
    };
    let port = if destination.scheme() == Some(&Scheme::HTTP) {
        80
    } else {
        443
    };
    let Ok(authority) = format!("{authority}:{port}").parse::<Authority>() else {
        return destination;
    };
    let mut parts = destination.into_parts();
    parts.authority = Some(authority);
    Uri::from_parts(parts).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(url: &str, proxies: Matcher) -> Route {
        Route::to(&url.parse().unwrap(), &proxies, Duration::from_secs(1))
    }

    #[test]
    fn proxies_are_taken_from_the_environment_as_reqwest_does() {
        let proxies = || {
            Matcher::builder()
                .http("http://proxy.example:3128")
                .https("http://user:p.secret@proxy.example:3128")
                .no("localhost,127.0.0.1")
                .build()
        };
        assert!(matches!(
            route("https://api.tinybird.co", proxies()),
            Route::Tunnel(_)
        ));
        assert!(matches!(
            route("http://example.com", proxies()),
            Route::Tunnel(_)
        ));
        assert!(matches!(
            route("http://localhost:7181", proxies()),
            Route::Direct(_)
        ));
        assert!(matches!(
            route("https://api.tinybird.co", Matcher::builder().build()),
            Route::Direct(_)
        ));
        let socks = Matcher::builder()
            .all("socks5://proxy.example:1080")
            .build();
        assert!(matches!(
            route("https://api.tinybird.co", socks),
            Route::Unsupported(_)
        ));
    }

    #[test]
    fn tunnels_are_told_the_port_of_the_scheme() {
        for (url, expected) in [
            (
                "http://example.com/v0/events",
                "http://example.com:80/v0/events",
            ),
            (
                "https://example.com/v0/events",
                "https://example.com:443/v0/events",
            ),
            ("http://example.com:8080/", "http://example.com:8080/"),
        ] {
            assert_eq!(with_port(url.parse().unwrap()).to_string(), expected);
        }
    }

    #[tokio::test]
    async fn an_unsupported_proxy_fails_each_connection_saying_why() {
        let socks = Matcher::builder()
            .all("socks5://proxy.example:1080")
            .build();
        let mut route = route("https://api.tinybird.co", socks);
        let error = route.call("https://api.tinybird.co".parse().unwrap()).await;
        let error = error.err().unwrap().to_string();
        assert!(error.contains("socks5"), "{error}");
    }

    #[test]
    fn the_tls_stack_of_the_build_sets_up() {
        let connector = connector(
            &"https://api.tinybird.co".parse().unwrap(),
            Duration::from_secs(1),
        );
        assert!(connector.is_ok());
        assert_eq!(
            TLS.is_some(),
            cfg!(any(
                feature = "rustls",
                feature = "rustls-aws-lc",
                feature = "native-tls"
            ))
        );
    }
}
