//! Forwarding to upstreams with hyper: streamed bodies both ways, hop-by-hop headers
//! removed, X-Forwarded-* set, WebSocket (any HTTP/1.1 upgrade) tunnelled, HTTP/1.1 towards
//! the upstream over a keep-alive pool, timeouts. Never decides who may pass.
//!
//! A GET or HEAD without a body to a plain `http://` upstream takes the inline path in
//! `h1` (the exchange runs in the request's own task); everything else goes through hyper's
//! pooled client.

mod client;
mod framing;
pub(crate) mod h1;
mod headers;
mod respond;
pub(crate) mod segment;
mod span;
mod tunnel;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;
use url::Url;

use crate::config::UpstreamConfig;

/// Body of every response the gateway sends: an upstream's, or a page of our own. An
/// upstream response from the inline path also carries the upstream's header lines as
/// received (`upstream_head`): the gateway's own HTTP/1.1 loop writes them out as they are,
/// and only a response hyper serves is given a `HeaderMap` of them (`for_hyper`).
pub struct Body {
    kind: Kind,
    head: Option<h1::RawHead>,
}

enum Kind {
    /// Streamed from hyper's client.
    Upstream(Incoming, Box<Gap>),
    /// Streamed from an inline exchange. (The watch is boxed: every response's `Body`, most
    /// of them complete, is moved several times, and would carry its size each time.)
    Inline(h1::InlineBody, Box<Gap>),
    /// Complete: a page of ours, or an upstream body that arrived with its head.
    Full(Full<Bytes>),
    /// No body: the upstream's side of a WebSocket that answered 101, for the gateway's own
    /// loop to splice to its client (`Body::take_tunnel`).
    Tunnel(Box<Tunnel>),
}

impl Body {
    fn new(kind: Kind) -> Body {
        Body { kind, head: None }
    }

    /// The upstream's end-to-end header lines, when they are not in the response's
    /// `HeaderMap` (which then holds only what the gateway adds).
    pub fn upstream_head(&self) -> Option<&h1::RawHead> {
        self.head.as_ref()
    }

    /// The WebSocket tunnel a 101 carries (asked for with `RequestBody::Upgrade`), taken out;
    /// the body is then empty.
    pub fn take_tunnel(&mut self) -> Option<Tunnel> {
        if !matches!(self.kind, Kind::Tunnel(_)) {
            return None;
        }
        match std::mem::replace(&mut self.kind, Kind::Full(Full::default())) {
            Kind::Tunnel(tunnel) => Some(*tunnel),
            _ => None,
        }
    }
}

pub use client::ClientInfo;
use client::{X_FORWARDED_FOR, X_FORWARDED_PROTO};
pub use h1::{drained, HeaderSpan, RawHead};
pub use headers::Outgoing;
use headers::{
    is_upgrade, is_websocket, outgoing_headers, remove_gateway_set_cookies, remove_hop_by_hop,
};
pub use respond::{
    add_gateway_cookies, client_headers, make_private, BytesSink, HeadSink, MapSink, Written,
};
pub use tunnel::{relay, Tunnel};

/// `resp` as hyper serves it: its `HeaderMap` holds exactly the lines `client_headers` lets
/// through (the upstream's raw lines included), and hyper frames the message.
pub fn for_hyper(resp: Response<Body>, head_request: bool) -> Response<Body> {
    let mut map = HeaderMap::with_capacity(resp.headers().len() + 8);
    client_headers(
        resp.status(),
        resp.headers(),
        resp.body(),
        head_request,
        &mut MapSink(&mut map),
    );
    let (mut parts, mut body) = resp.into_parts();
    body.head = None;
    parts.headers = map;
    Response::from_parts(parts, body)
}

/// Body of a request from a client: hyper's, or none (a request head read by the
/// gateway's own HTTP/1.1 loop, which takes only requests without a body).
pub enum RequestBody {
    Hyper(Incoming),
    /// A body that may carry at most so many more bytes (a route's `max_body`). Boxed: every
    /// request moves this enum several times, and nearly none is limited.
    Limited(Box<(Incoming, u64)>),
    Empty,
    /// None, on a WebSocket handshake read by the gateway's own loop: a 101 comes back with
    /// the upstream's side of the tunnel (`Body::take_tunnel`) for that loop to splice.
    Upgrade,
}

/// A request body went over its route's `max_body` on the way (413).
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than the route's max_body")]
pub struct BodyTooLarge;

/// A request body came slower than `server.min_body_rate` (408).
#[derive(Debug, thiserror::Error)]
#[error("the request body came slower than server.min_body_rate")]
struct BodyTooSlow;

/// `server.min_body_rate`: bytes a second a request body must average once `grace`
/// (`server.header_read_timeout`) has passed, so a client starting on a slow link (or a
/// phone waking its radio) is not cut off at once. `min` 0: no minimum.
#[derive(Debug, Clone, Copy)]
pub struct BodyRate {
    pub min: u64,
    pub grace: Duration,
}

impl RequestBody {
    /// This body, cut off with `BodyTooLarge` after `max` bytes.
    pub fn limited(self, max: u64) -> RequestBody {
        match self {
            RequestBody::Hyper(body) => RequestBody::Limited(Box::new((body, max))),
            other => other,
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            RequestBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            RequestBody::Limited(limited) => {
                let (body, left) = &mut **limited;
                let polled = std::task::ready!(Pin::new(body).poll_frame(cx));
                if let Some(Ok(frame)) = &polled {
                    let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                    if n > *left {
                        return Poll::Ready(Some(Err(BodyTooLarge.into())));
                    }
                    *left -= n;
                }
                Poll::Ready(polled.map(|r| r.map_err(Into::into)))
            }
            RequestBody::Empty | RequestBody::Upgrade => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Hyper(b) => b.is_end_stream(),
            RequestBody::Limited(limited) => limited.0.is_end_stream(),
            RequestBody::Empty | RequestBody::Upgrade => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Hyper(b) => b.size_hint(),
            RequestBody::Limited(limited) => limited.0.size_hint(),
            RequestBody::Empty | RequestBody::Upgrade => SizeHint::with_exact(0),
        }
    }
}

/// A page or JSON document of the gateway's own.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Body::new(Kind::Full(Full::new(bytes.into())))
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Upstream(b, gap) => {
                let polled = Pin::new(b).poll_frame(cx).map_err(Into::into);
                gap.watch(polled, cx)
            }
            Kind::Inline(b, gap) => {
                let polled = Pin::new(b).poll_frame(cx).map_err(Into::into);
                gap.watch(polled, cx)
            }
            Kind::Full(b) => Pin::new(b).poll_frame(cx).map_err(|e| match e {}),
            Kind::Tunnel(_) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(b, _) => b.is_end_stream(),
            Kind::Inline(b, _) => b.is_end_stream(),
            Kind::Full(b) => b.is_end_stream(),
            Kind::Tunnel(_) => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(b, _) => b.size_hint(),
            Kind::Inline(b, _) => b.size_hint(),
            Kind::Full(b) => b.size_hint(),
            Kind::Tunnel(_) => SizeHint::with_exact(0),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Watches an upstream body as it streams to the client: a wait for its next piece longer
/// than the response timeout ends it (as nginx's `proxy_read_timeout` does), and a body that
/// fails midway (the upstream closed or reset it, or stalled) is logged, since the client
/// only sees it cut short and the access line was written with the head.
struct Gap {
    upstream: Arc<str>,
    limit: Duration,
    /// When the body last moved (the coarse clock).
    moved: std::time::Instant,
    /// Armed once the body waits, and left armed while it moves: when it fires, it is set
    /// again from `moved` unless the limit has passed (one timer per stall, not per piece).
    waiting: Option<crate::coarse::Sleep>,
}

impl Gap {
    fn new(upstream: &Arc<str>, limit: Duration) -> Box<Gap> {
        Box::new(Gap {
            upstream: upstream.clone(),
            limit,
            moved: crate::coarse::now(),
            waiting: None,
        })
    }

    fn watch(
        &mut self,
        polled: Poll<Option<Result<Frame<Bytes>, BoxError>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match polled {
            Poll::Ready(Some(Err(e))) => {
                self.waiting = None;
                tracing::warn!(upstream = %self.upstream, error = %e,
                    "the upstream's response body failed midway: the client got it cut short");
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(data)) => {
                self.moved = crate::coarse::now();
                Poll::Ready(Some(data))
            }
            Poll::Ready(None) => {
                self.waiting = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let limit = self.limit;
                loop {
                    let due = self.moved + limit;
                    let waiting = self
                        .waiting
                        .get_or_insert_with(|| crate::coarse::sleep_until(due));
                    if std::future::Future::poll(Pin::new(waiting), cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.waiting = None;
                    if crate::coarse::now() >= due {
                        break;
                    }
                    // The body moved since the timer was set: set it again from then.
                }
                tracing::warn!(upstream = %self.upstream, after = ?limit,
                    "the upstream sent nothing more of its response body within upstream.response_timeout: the client got it cut short");
                Poll::Ready(Some(Err(format!(
                    "the upstream sent nothing more of the body for {limit:?}"
                )
                .into())))
            }
        }
    }
}

/// One upstream, taken apart once at start so each request only assembles parts.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The URL as configured, for logs and error pages.
    pub name: Arc<str>,
    /// Which of the configured upstreams (the route's index): picks its inline pool.
    index: usize,
    scheme: Scheme,
    authority: Authority,
    /// Prepended to the request path; empty for `http://host:port` or `.../`.
    base_path: String,
}

impl Upstream {
    pub fn from_url(url: &Url, index: usize) -> Result<Upstream, String> {
        let scheme = if url.scheme() == "https" {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let host = url.host_str().ok_or("no host")?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Ok(Upstream {
            name: Arc::from(url.as_str().trim_end_matches('/')),
            index,
            scheme,
            authority: authority.parse().map_err(|e| format!("{e}"))?,
            base_path: url.path().trim_end_matches('/').to_string(),
        })
    }

    fn uri(&self, path: &str, query: Option<&str>, original: Option<&PathAndQuery>) -> Option<Uri> {
        let pq = match original {
            // The path did not change: reuse the request's bytes.
            Some(pq) if self.base_path.is_empty() => pq.clone(),
            _ => {
                let mut s = String::with_capacity(
                    self.base_path.len() + path.len() + 1 + query.map_or(0, str::len),
                );
                s.push_str(&self.base_path);
                s.push_str(path);
                if let Some(q) = query {
                    s.push('?');
                    s.push_str(q);
                }
                PathAndQuery::try_from(s).ok()?
            }
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(pq);
        Uri::from_parts(parts).ok()
    }
}

impl Upstream {
    /// The HTTP/1.1 request head for the inline path: the request line with this
    /// upstream's path, then the headers `outgoing_headers` lets through and adds, and Host
    /// when there is none. `upgrade`: a WebSocket handshake, which keeps its Upgrade.
    fn request_head<B>(
        &self,
        req: &Request<B>,
        new_path: Option<&str>,
        out: Outgoing<'_>,
        client: &ClientInfo,
        upgrade: bool,
    ) -> Vec<u8> {
        let uri = req.uri();
        let headers = req.headers();
        let path = new_path.unwrap_or(uri.path());
        let size = 256
            + self.base_path.len()
            + uri
                .path_and_query()
                .map_or(path.len(), |pq| pq.as_str().len())
            + headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 4)
                .sum::<usize>()
            + out
                .identity
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 4)
                .sum::<usize>();
        let mut head = Vec::with_capacity(size);
        head.extend_from_slice(req.method().as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(self.base_path.as_bytes());
        head.extend_from_slice(if path.is_empty() {
            b"/"
        } else {
            path.as_bytes()
        });
        if let Some(q) = uri.query() {
            head.push(b'?');
            head.extend_from_slice(q.as_bytes());
        }
        head.extend_from_slice(b" HTTP/1.1\r\n");
        let mut has_host = false;
        outgoing_headers(
            headers,
            out,
            client,
            uri.authority(),
            upgrade,
            |name, value| {
                has_host |= name == header::HOST;
                head.extend_from_slice(name.as_str().as_bytes());
                head.extend_from_slice(b": ");
                head.extend_from_slice(value.as_bytes());
                head.extend_from_slice(b"\r\n");
            },
        );
        if !has_host {
            head.extend_from_slice(b"host: ");
            head.extend_from_slice(self.authority.as_str().as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream {upstream} is unavailable: {reason}")]
    Unavailable { upstream: Arc<str>, reason: String },
    #[error("upstream {upstream} did not answer within {after:?}")]
    Timeout { upstream: Arc<str>, after: Duration },
    #[error("cannot build the upstream address for {upstream}")]
    BadUri { upstream: Arc<str> },
    #[error(transparent)]
    BodyTooLarge(#[from] BodyTooLarge),
    /// The client sent its body too slowly, or stopped sending it (408).
    #[error("the client sent its request body too slowly")]
    ClientTooSlow,
}

/// Idle connections kept per upstream (per worker).
const MAX_IDLE: usize = 256;

/// The pooled clients and their limits.
#[derive(Clone)]
pub struct Proxy {
    client: Client<segment::CappedConnector<HttpsConnector<HttpConnector>>, UploadBody>,
    /// The inline path's pools, one per upstream (by `Upstream::index`).
    inline: Arc<[Arc<h1::Pool>]>,
    connect_timeout: Duration,
    response_timeout: Duration,
    pool_idle_timeout: Duration,
    body_rate: BodyRate,
}

impl Proxy {
    /// A client for `upstreams` upstreams (their indexes run from 0).
    pub fn new(
        config: &UpstreamConfig,
        body_rate: BodyRate,
        upstreams: usize,
    ) -> Result<Proxy, crate::tls::TlsError> {
        let connector = crate::tls::https_connector(
            config.connect_timeout,
            config.ca_file.as_deref(),
            "upstream.ca_file",
        )?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(MAX_IDLE)
            .set_host(false)
            .build(segment::CappedConnector(connector));
        let inline = (0..upstreams)
            .map(|_| Arc::new(h1::Pool::new(MAX_IDLE, config.pool_idle_timeout)))
            .collect();
        Ok(Proxy {
            client,
            inline,
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            pool_idle_timeout: config.pool_idle_timeout,
            body_rate,
        })
    }

    /// This client with fresh inline pools for `upstreams` upstreams: a config reload's
    /// routes index their upstreams anew, so a pool never outlives the routes it was made
    /// for (the old pools close their idle connections when the last request using them
    /// ends). The hyper client and its pool are shared with `self`.
    pub fn with_pools(&self, upstreams: usize) -> Proxy {
        Proxy {
            client: self.client.clone(),
            inline: (0..upstreams)
                .map(|_| Arc::new(h1::Pool::new(MAX_IDLE, self.pool_idle_timeout)))
                .collect(),
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            pool_idle_timeout: self.pool_idle_timeout,
            body_rate: self.body_rate,
        }
    }

    /// Sends the request upstream and returns its response (streaming), or why not.
    /// `new_path` is the normalised path when it differs from the request's; the query is
    /// passed as the client sent it.
    pub async fn forward(
        &self,
        upstream: &Upstream,
        req: Request<RequestBody>,
        new_path: Option<&str>,
        client: &ClientInfo,
        out: Outgoing<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        if matches!(req.body(), RequestBody::Upgrade) {
            return Box::pin(self.forward_tunnel(upstream, req, new_path, client, out)).await;
        }
        let inline = upstream.scheme == Scheme::HTTP
            && (req.method() == Method::GET || req.method() == Method::HEAD)
            && req.body().is_end_stream()
            && !is_upgrade(req.version(), req.headers());
        if inline {
            if let Some(pool) = self.inline.get(upstream.index) {
                return self
                    .forward_inline(pool, upstream, req, new_path, client, out)
                    .await;
            }
        }
        // Boxed: hyper's client future is KBs, and inline it would make every request's
        // future (moved several times per request) that much larger.
        Box::pin(self.forward_client(upstream, req, new_path, client, out)).await
    }

    /// Everything the inline path does not take: bodies, upgrades, `https://` upstreams.
    async fn forward_client(
        &self,
        upstream: &Upstream,
        mut req: Request<RequestBody>,
        new_path: Option<&str>,
        client: &ClientInfo,
        out: Outgoing<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let uri = upstream
            .uri(
                new_path.unwrap_or(req.uri().path()),
                req.uri().query(),
                if new_path.is_none() {
                    req.uri().path_and_query()
                } else {
                    None
                },
            )
            .ok_or_else(|| ProxyError::BadUri {
                upstream: upstream.name.clone(),
            })?;
        let upgrade = is_upgrade(req.version(), req.headers()) && req.method() == Method::GET;
        // A handshake the gateway's own loop read has no hyper upgrade: the tunnel goes back
        // to that loop with the response.
        let own_loop = matches!(req.body(), RequestBody::Upgrade);
        let client_upgrade = (upgrade && !own_loop).then(|| hyper::upgrade::on(&mut req));

        let mut headers = HeaderMap::with_capacity(req.headers().len() + out.identity.len() + 3);
        outgoing_headers(
            req.headers(),
            out,
            client,
            req.uri().authority(),
            upgrade,
            |name, value| {
                headers.append(name.clone(), value.clone());
            },
        );
        *req.headers_mut() = headers;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;

        let (req, upload) = UploadBody::wrap(req, self.body_rate);
        let sent = tokio::select! {
            biased;
            resp = self.client.request(req) => Ok(resp),
            waited = answer_deadline(upload, self.response_timeout) => Err(waited),
        };
        let mut resp = match sent {
            Err(Waited::ClientStalled) => return Err(ProxyError::ClientTooSlow),
            Err(Waited::Upstream) => {
                return Err(ProxyError::Timeout {
                    upstream: upstream.name.clone(),
                    after: self.response_timeout,
                })
            }
            Ok(Err(e)) => {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(s) = source {
                    if s.is::<BodyTooLarge>() {
                        return Err(BodyTooLarge.into());
                    }
                    if s.is::<BodyTooSlow>() {
                        return Err(ProxyError::ClientTooSlow);
                    }
                    source = s.source();
                }
                return Err(ProxyError::Unavailable {
                    upstream: upstream.name.clone(),
                    reason: crate::telemetry::error_chain(&e),
                });
            }
            Ok(Ok(resp)) => resp,
        };
        // The inline path's limit on a response head (hyper's own is ~400 KB): whichever
        // path a request takes, an oversized head gets the same 502.
        let head_size: usize = resp
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if head_size > h1::MAX_HEAD {
            return Err(ProxyError::Unavailable {
                upstream: upstream.name.clone(),
                reason: "invalid response: response head too large".into(),
            });
        }

        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching && !(upgrade && is_websocket(resp.headers())) {
            // Only a WebSocket asked for is tunnelled: any other switch would carry bytes
            // past every check the gateway makes.
            return Err(ProxyError::Unavailable {
                upstream: upstream.name.clone(),
                reason: "invalid response: 101 Switching Protocols to something other than the WebSocket asked for".into(),
            });
        }
        let mut tunnel = None;
        if switching && own_loop {
            let upgraded =
                crate::coarse::timeout(self.response_timeout, hyper::upgrade::on(&mut resp));
            match upgraded.await {
                Ok(Ok(upgraded)) => tunnel = Some(Tunnel::hyper(upgraded)),
                Ok(Err(e)) => {
                    return Err(ProxyError::Unavailable {
                        upstream: upstream.name.clone(),
                        reason: format!("upgrade failed: {e}"),
                    })
                }
                Err(_) => {
                    return Err(ProxyError::Timeout {
                        upstream: upstream.name.clone(),
                        after: self.response_timeout,
                    })
                }
            }
        } else if switching {
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                let name = upstream.name.clone();
                tokio::spawn(async move {
                    match tokio::try_join!(client_upgrade, upstream_upgrade) {
                        Ok((c, u)) => {
                            let mut c = TokioIo::new(c);
                            let mut u = TokioIo::new(u);
                            tunnel::relay(&mut c, &mut u, || false).await;
                        }
                        Err(e) => tracing::warn!(upstream = %name, error = %e, "upgrade failed"),
                    }
                });
            }
        }
        remove_hop_by_hop(resp.headers_mut(), switching);
        remove_gateway_set_cookies(resp.headers_mut(), out.filter);
        if let Some(tunnel) = tunnel {
            return Ok(resp.map(|_| Body::new(Kind::Tunnel(Box::new(tunnel)))));
        }
        let gap = Gap::new(&upstream.name, self.response_timeout);
        Ok(resp.map(|b| Body::new(Kind::Upstream(b, gap))))
    }

    /// The inline path: the request head is written here, on a pooled connection.
    async fn forward_inline(
        &self,
        pool: &Arc<h1::Pool>,
        upstream: &Upstream,
        req: Request<RequestBody>,
        new_path: Option<&str>,
        client: &ClientInfo,
        out: Outgoing<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let head = upstream.request_head(&req, new_path, out, client, false);
        let head_request = req.method() == Method::HEAD;
        drop(req);

        let exchange = pool.exchange(
            &upstream.authority,
            self.connect_timeout,
            &head,
            head_request,
            out.filter,
        );
        let (head, body) = self.inline_answer(upstream, exchange).await?;
        Ok(self.inline_response(upstream, head, body))
    }

    /// What an exchange on the inline path came to, within `upstream.response_timeout`.
    async fn inline_answer<T>(
        &self,
        upstream: &Upstream,
        exchange: impl std::future::Future<Output = Result<T, h1::Failure>>,
    ) -> Result<T, ProxyError> {
        match crate::coarse::timeout(self.response_timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(failure)) => Err(ProxyError::Unavailable {
                upstream: upstream.name.clone(),
                reason: failure.to_string(),
            }),
            Err(_) => Err(ProxyError::Timeout {
                upstream: upstream.name.clone(),
                after: self.response_timeout,
            }),
        }
    }

    /// An upstream response read on the inline path: its head, and its body as one frame when
    /// it came with the head, else streamed.
    fn inline_response(
        &self,
        upstream: &Upstream,
        head: h1::Head,
        body: h1::InlineBody,
    ) -> Response<Body> {
        let kind = match body.into_complete() {
            Ok(Some(bytes)) => Kind::Full(Full::new(bytes)),
            Ok(None) => Kind::Full(Full::default()),
            Err(streaming) => {
                Kind::Inline(streaming, Gap::new(&upstream.name, self.response_timeout))
            }
        };
        let mut resp = Response::new(Body {
            kind,
            head: Some(head.lines),
        });
        *resp.status_mut() = head.status;
        resp
    }
}

/// The request body on its way upstream, reporting progress: the response timeout is the
/// time the upstream gets to answer once it has the whole request, so an upload that takes
/// longer than that (a large file on a slow link) is not cut off while it is moving.
/// A body trickled to keep the stall timer from firing (a byte a second) is cut once it
/// averages below the minimum rate (`BodyRate`): it would hold a connection to the app for
/// as long as the client liked.
struct UploadBody {
    inner: RequestBody,
    /// `false` on each chunk sent, `true` once the body is complete; `None` when done.
    progress: Option<watch::Sender<bool>>,
    started: tokio::time::Instant,
    received: u64,
    rate: BodyRate,
}

impl UploadBody {
    /// The request with its body wrapped, and the progress to watch (none for an empty body).
    fn wrap(
        req: Request<RequestBody>,
        rate: BodyRate,
    ) -> (Request<UploadBody>, Option<watch::Receiver<bool>>) {
        let (parts, inner) = req.into_parts();
        let (progress, watcher) = if inner.is_end_stream() {
            (None, None)
        } else {
            let (tx, rx) = watch::channel(false);
            (Some(tx), Some(rx))
        };
        let body = UploadBody {
            inner,
            progress,
            started: tokio::time::Instant::now(),
            received: 0,
            rate,
        };
        (Request::from_parts(parts, body), watcher)
    }

    /// Whether the body so far came slower than the minimum rate allows.
    fn too_slow(&self) -> bool {
        if self.rate.min == 0 {
            return false;
        }
        let Some(counted) = self.started.elapsed().checked_sub(self.rate.grace) else {
            return false;
        };
        self.received < self.rate.min.saturating_mul(counted.as_secs())
    }
}

impl http_body::Body for UploadBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            this.received += frame.data_ref().map_or(0, |d| d.len() as u64);
            if this.too_slow() {
                return Poll::Ready(Some(Err(BodyTooSlow.into())));
            }
        }
        if let Poll::Ready(frame) = &polled {
            // hyper stops polling once `is_end_stream` says so; it may not ask for `None`.
            let done = !matches!(frame, Some(Ok(_))) || this.inner.is_end_stream();
            if done {
                if let Some(tx) = this.progress.take() {
                    tx.send_replace(true);
                }
            } else if let Some(tx) = &this.progress {
                tx.send_replace(false);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whose time ran out.
enum Waited {
    /// The upload did not move for the whole limit (408).
    ClientStalled,
    /// The upstream had the whole request and did not answer in time (504).
    Upstream,
}

/// Completes when the upstream has had `limit` to answer since the request body was sent in
/// full, or when the upload has not moved for `limit` (a stalled client).
async fn answer_deadline(upload: Option<watch::Receiver<bool>>, limit: Duration) -> Waited {
    if let Some(mut upload) = upload {
        loop {
            if *upload.borrow_and_update() {
                break;
            }
            match tokio::time::timeout(limit, upload.changed()).await {
                Ok(Ok(())) => {}
                // The body was dropped: hyper has finished with it.
                Ok(Err(_)) => break,
                Err(_) => return Waited::ClientStalled,
            }
        }
    }
    tokio::time::sleep(limit).await;
    Waited::Upstream
}

#[cfg(test)]
mod tests;
