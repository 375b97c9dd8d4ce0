//! The CLI's HTTP client, for `shelf search --server`: HTTP/1.1 over plain
//! TCP or TLS (system root certificates).

use anyhow::Context;
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one request may take in all.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// POSTs a JSON body; returns the status and the response body.
pub async fn post_json(
    url: &Uri,
    token: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .context("loading the system's root certificates")?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut request = Request::post(url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .context("building the request")?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .with_context(|| format!("cannot reach {url}; is `shelf serve` running there?"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer from {url}"))?
            .to_bytes();
        anyhow::Ok((status, bytes))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .with_context(|| format!("{url} did not answer within {} s", TIMEOUT.as_secs()))?
}
