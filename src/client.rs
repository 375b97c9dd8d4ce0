//! The CLI's HTTP client, for `--server` commands: HTTP/1.1 over plain TCP
//! or TLS (system root certificates), through the proxy the environment
//! names (`HTTPS_PROXY` for https URLs, `HTTP_PROXY` for http ones, with
//! `NO_PROXY` exceptions, as curl reads them). A proxied request goes
//! through a `CONNECT` tunnel, so TLS stays end to end.

use anyhow::Context;
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioExecutor;

/// How long one request may take in all.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A client for one server, built once: the proxy decision and the TLS
/// roots are read when it is made, not per request, and connections are
/// kept alive between requests (`shelf eval --server` asks one query after
/// another, `shelf mcp --server` relays every message).
pub struct JsonClient {
    inner: Inner,
    /// " through the proxy …" for messages, or empty.
    via: String,
}

type Direct = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;
type Proxied = Client<hyper_rustls::HttpsConnector<Tunnel<HttpConnector>>, Full<Bytes>>;

enum Inner {
    Direct(Direct),
    Proxied(Proxied),
}

impl JsonClient {
    /// A client for requests to `url`'s server, through the proxy the
    /// environment names for it.
    pub fn for_url(url: &Uri) -> anyhow::Result<Self> {
        let tls = || {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .context("loading the system's root certificates")
        };
        Ok(match Matcher::from_env().intercept(url) {
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), HttpConnector::new());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let connector = tls()?.https_or_http().enable_http1().wrap_connector(tunnel);
                Self {
                    inner: Inner::Proxied(Client::builder(TokioExecutor::new()).build(connector)),
                    via: format!(" through the proxy {}", proxy.uri()),
                }
            }
            None => {
                let connector = tls()?.https_or_http().enable_http1().build();
                Self {
                    inner: Inner::Direct(Client::builder(TokioExecutor::new()).build(connector)),
                    via: String::new(),
                }
            }
        })
    }

    /// POSTs a JSON body; returns the status and the response body.
    pub async fn post_json(
        &self,
        url: &Uri,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.post_json_with(url, token, body, &[]).await
    }

    /// POSTs one JSON body with `headers` besides the usual ones.
    pub async fn post_json_with(
        &self,
        url: &Uri,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::post(url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .context("building the request")?;
        let exchange = async {
            match &self.inner {
                Inner::Direct(c) => send(c, request, url, &self.via).await,
                Inner::Proxied(c) => send(c, request, url, &self.via).await,
            }
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .with_context(|| format!("{url} did not answer within {} s", TIMEOUT.as_secs()))?
    }
}

/// POSTs one JSON body with a client made for it.
pub async fn post_json(
    url: &Uri,
    token: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    JsonClient::for_url(url)?.post_json(url, token, body).await
}

async fn send<C: Connect + Clone + Send + Sync + 'static>(
    client: &Client<C, Full<Bytes>>,
    request: Request<Full<Bytes>>,
    url: &Uri,
    via: &str,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let response = client
        .request(request)
        .await
        .with_context(|| format!("cannot reach {url}{via}; is `shelf serve` running there?"))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .with_context(|| format!("reading the answer from {url}"))?
        .to_bytes();
    Ok((status, bytes))
}
