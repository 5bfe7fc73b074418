//! `hostbot --healthcheck`: probe a running instance's `/healthz` and exit 0 or 1.
//!
//! The image is `FROM scratch`, so Docker's `HEALTHCHECK` has no curl to call; the binary probes
//! itself instead. A plain HTTP/1.1 GET over hyper's client connection, nothing more: no TLS,
//! no redirects, no pool.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::header::{HOST, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::Error;

/// The URL probed when none is given: `/healthz` on the address the server listens on, with the
/// unspecified addresses replaced by loopback.
pub(crate) fn default_url(host: &str, port: u16) -> String {
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1".to_owned(),
        "::" | "[::]" => "[::1]".to_owned(),
        other if other.contains(':') && !other.starts_with('[') => format!("[{other}]"),
        other => other.to_owned(),
    };
    format!("http://{host}:{port}/healthz")
}

/// GETs `url` and succeeds on a 2xx answer within `timeout`.
pub(crate) async fn probe(url: &str, timeout: Duration) -> Result<(), Error> {
    let unhealthy = |reason: String| Error::Unhealthy {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url
        .parse()
        .map_err(|err| unhealthy(format!("invalid url: {err}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(unhealthy("only http:// urls are supported".to_owned()));
    }
    let host = uri
        .host()
        .ok_or_else(|| unhealthy("url has no host".to_owned()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map_or_else(String::new, ToString::to_string);
    let path = uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();

    let exchange = async {
        let stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|err| unhealthy(format!("connect: {err}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| unhealthy(format!("handshake: {err}")))?;
        let request = Request::get(path)
            .header(HOST, authority)
            .header(
                USER_AGENT,
                concat!("hostbot-healthcheck/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|err| unhealthy(format!("request: {err}")))?;
        // The connection future drives the socket; it only ends early on an error.
        let status = tokio::select! {
            response = sender.send_request(request) => {
                response.map_err(|err| unhealthy(format!("request: {err}")))?.status()
            }
            result = conn => {
                let reason = result.err().map_or_else(|| "connection closed".to_owned(), |err| err.to_string());
                return Err(unhealthy(reason));
            }
        };
        if status.is_success() {
            Ok(())
        } else {
            Err(unhealthy(format!("status {status}")))
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| unhealthy(format!("no answer within {timeout:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_uses_loopback_for_unspecified_addresses() {
        assert_eq!(default_url("0.0.0.0", 80), "http://127.0.0.1:80/healthz");
        assert_eq!(default_url("::", 8080), "http://[::1]:8080/healthz");
        assert_eq!(default_url("::1", 8080), "http://[::1]:8080/healthz");
        assert_eq!(default_url("10.0.0.7", 80), "http://10.0.0.7:80/healthz");
        assert_eq!(default_url("localhost", 80), "http://localhost:80/healthz");
    }

    #[tokio::test]
    async fn refused_connection_is_unhealthy_and_names_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/healthz");
        let err = probe(&url, Duration::from_secs(2))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("healthcheck {url}: connect")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn rejects_other_schemes() {
        let err = probe("https://example.com/", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("only http://"), "{err}");
    }
}
