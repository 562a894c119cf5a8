//! HTTP calls to the provider, each with a timeout and a size limit: our GETs (discovery,
//! JWKS) and, as its `AsyncHttpClient`, every request of the `openidconnect` crate.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use crate::runtime_slot::PerRuntime;
use crate::telemetry::Clip;

/// Provider answers larger than this are refused.
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("the identity provider at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the identity provider at {url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("the identity provider answered {status} at {url}: {}{}", Clip(error), description.as_deref().map(|d| format!(" ({})", Clip(d))).unwrap_or_default())]
    Refused {
        url: String,
        status: u16,
        /// The OAuth `error` code, like `invalid_grant`.
        error: String,
        description: Option<String>,
    },
    #[error("the identity provider's {what} is not usable: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("the identity provider's metadata is not loaded yet")]
    NotReady,
    #[error("the JWKS was fetched moments ago; not fetching again yet")]
    RateLimited,
}

impl ProviderError {
    /// The provider refused the request itself (an OAuth error answer: 400, or 401 for the
    /// client's credentials), as opposed to: could not be asked, or was in trouble (5xx,
    /// 429 throttling, a proxy's 403 or 404 in front of it), which may pass.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ProviderError::Refused {
                status: 400 | 401,
                ..
            }
        )
    }

    /// The provider refused the grant itself (`invalid_grant`: a refresh token revoked,
    /// expired, or its user disabled or deleted), not the client (`invalid_client`, as with a
    /// secret being rotated): only this ends a session at a refresh.
    pub fn refuses_grant(&self) -> bool {
        self.is_refusal() && self.oauth_error() == Some("invalid_grant")
    }

    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            ProviderError::Refused { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Client authentication for `post_form`.
pub enum Auth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
    Public(&'a str),
}

type Pool = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pool per runtime (`runtime_slot`): a pooled hyper connection is a task on the runtime
/// that opened it, and a worker's code exchange or refresh would otherwise hop to whichever
/// runtime that was.
#[derive(Clone)]
pub struct HttpClient {
    pools: Arc<PerRuntime<OnceLock<Pool>>>,
    connector: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

/// The `openidconnect` crate's requests go out on this client: the provider timeout, the size
/// limit, no redirects followed (hyper's client follows none), and any answer but a 2xx
/// turned into `ProviderError::Refused` with its status and OAuth error, as our own calls do.
impl<'c> openidconnect::AsyncHttpClient<'c> for HttpClient {
    type Error = ProviderError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, ProviderError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = Url::parse(&parts.uri.to_string()).map_err(|e| ProviderError::Invalid {
                what: "endpoint URL",
                reason: e.to_string(),
            })?;
            let req = Request::from_parts(parts, Full::new(Bytes::from(body)));
            let body = self.send(&url, req).await?;
            http::Response::builder()
                .status(http::StatusCode::OK)
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec())
                .map_err(|e| unreachable(&url, e))
        })
    }
}

impl HttpClient {
    pub fn new(
        timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<HttpClient, crate::tls::TlsError> {
        let connector = crate::tls::https_connector(timeout, ca_file, "provider.ca_file")?;
        Ok(HttpClient {
            pools: Arc::default(),
            connector,
            timeout,
        })
    }

    /// This runtime's pool (see `HttpClient`).
    fn pool(&self) -> &Pool {
        self.pools.here().get_or_init(|| {
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(self.connector.clone())
        })
    }

    pub async fn get(&self, url: &Url) -> Result<Bytes, ProviderError> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(url.as_str())
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| unreachable(url, e))?;
        self.send(url, req).await
    }

    /// A form POST of our own, for the one request the library will not send: revocation to
    /// a plain-http endpoint on loopback (the demo's and the tests' providers; RFC 7009 asks
    /// for TLS, which a loopback hop does not need).
    pub async fn post_form(
        &self,
        url: &Url,
        params: &[(&str, &str)],
        auth: Auth<'_>,
    ) -> Result<Bytes, ProviderError> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(url.as_str())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        // The serializer is not Send: finish the form before anything awaits.
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.extend_pairs(params);
            match auth {
                Auth::Basic(id, secret) => {
                    // RFC 6749 2.3.1: both parts form-encoded before base64.
                    let enc = |s: &str| {
                        url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                    };
                    let creds = base64::engine::general_purpose::STANDARD.encode(format!(
                        "{}:{}",
                        enc(id),
                        enc(secret)
                    ));
                    builder = builder.header(AUTHORIZATION, format!("Basic {creds}"));
                    form.append_pair("client_id", id);
                }
                Auth::Post(id, secret) => {
                    form.append_pair("client_id", id);
                    form.append_pair("client_secret", secret);
                }
                Auth::Public(id) => {
                    form.append_pair("client_id", id);
                }
            }
            form.finish()
        };
        let req = builder
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| unreachable(url, e))?;
        self.send(url, req).await
    }

    async fn send(&self, url: &Url, req: Request<Full<Bytes>>) -> Result<Bytes, ProviderError> {
        let call = async {
            let resp = self
                .pool()
                .request(req)
                .await
                .map_err(|e| unreachable(url, crate::telemetry::error_chain(&e)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| unreachable(url, e))?
                .to_bytes();
            Ok::<_, ProviderError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ProviderError::Timeout {
                url: strip_query(url),
                after: self.timeout,
            })??;
        if status.is_success() {
            return Ok(body);
        }
        #[derive(serde::Deserialize)]
        struct OAuthError {
            error: Option<String>,
            error_description: Option<String>,
        }
        let parsed: Option<OAuthError> = serde_json::from_slice(&body).ok();
        Err(ProviderError::Refused {
            url: strip_query(url),
            status: status.as_u16(),
            error: parsed
                .as_ref()
                .and_then(|p| p.error.clone())
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16())),
            description: parsed.and_then(|p| p.error_description),
        })
    }
}

fn unreachable(url: &Url, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unreachable {
        url: strip_query(url),
        reason: e.to_string(),
    }
}

/// Logs never carry query strings (they may hold codes or tokens).
fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::io::{Read, Write};
    use std::sync::Mutex;

    /// A keep-alive HTTP/1.1 server on loopback that answers `{}` to every request, and the
    /// client ports of the connections it was given.
    fn server() -> (Url, Arc<Mutex<HashSet<u16>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/jwks", listener.local_addr().unwrap())).unwrap();
        let peers = Arc::new(Mutex::new(HashSet::new()));
        let seen = peers.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                seen.lock()
                    .unwrap()
                    .insert(conn.peer_addr().unwrap().port());
                std::thread::spawn(move || {
                    let (mut buf, mut have) = ([0u8; 4096], Vec::new());
                    while let Ok(n @ 1..) = conn.read(&mut buf) {
                        have.extend_from_slice(&buf[..n]);
                        while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                            have.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                            if conn.write_all(answer).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, peers)
    }

    #[test]
    fn each_runtime_asks_the_provider_on_connections_of_its_own() {
        let (url, peers) = server();
        let client = HttpClient::new(Duration::from_secs(5), None).unwrap();
        let (asked_tx, asked_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
        let worker = |slot: usize, task: Task| {
            std::thread::spawn(move || {
                crate::runtime_slot::set(slot);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(task);
            })
        };
        // Worker 1 asks twice (one connection, kept), then keeps its runtime (and so that
        // idle connection) alive while worker 2 asks.
        let (c, u) = (client.clone(), url.clone());
        let first = worker(
            1,
            Box::pin(async move {
                c.get(&u).await.unwrap();
                c.get(&u).await.unwrap();
                asked_tx.send(()).unwrap();
                done_rx.await.unwrap();
            }),
        );
        let second = worker(
            2,
            Box::pin(async move {
                asked_rx.await.unwrap();
                assert_eq!(&client.get(&url).await.unwrap()[..], b"{}");
                done_tx.send(()).unwrap();
            }),
        );
        second.join().unwrap();
        first.join().unwrap();
        // A shared pool would have handed worker 2 worker 1's idle connection: one in all.
        assert_eq!(peers.lock().unwrap().len(), 2);
    }
}
