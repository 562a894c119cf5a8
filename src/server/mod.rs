//! Listeners (plain and TLS, HTTP/1.1 and HTTP/2), the request pipeline, the gateway's own
//! endpoints under `auth_prefix`, pages and graceful shutdown. Never verifies tokens itself:
//! it calls `oidc`, `session`, `policy`, `identity` and `proxy`.

mod auth;
mod endpoints;
mod handler;
pub mod pages;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::identity::InboundFilter;
use crate::policy::RouteTable;
use crate::proxy::{ClientInfo, Proxy, Upstream};
use crate::telemetry::Metrics;

pub use auth::Auth;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("routes[{index}].upstream: {reason}")]
    Upstream { index: usize, reason: String },
    #[error(transparent)]
    Auth(#[from] auth::AuthSetupError),
}

/// Everything a request needs, built once at start and shared by all connections.
pub struct Gateway {
    pub config: Arc<Config>,
    routes: RouteTable,
    upstreams: Vec<Upstream>,
    proxy: Proxy,
    filter: InboundFilter,
    /// Present when any route needs sign-in.
    auth: Option<Arc<Auth>>,
    pub metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

impl Gateway {
    pub fn new(config: Config) -> Result<Gateway, ServerError> {
        let config = Arc::new(config);
        let routes = RouteTable::from_config(&config);
        let upstreams = config
            .routes
            .iter()
            .enumerate()
            .map(|(index, r)| {
                Upstream::from_url(&r.upstream)
                    .map_err(|reason| ServerError::Upstream { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let proxy = Proxy::new(&config.upstream)?;
        let metrics = Arc::new(Metrics::default());
        let auth = match &config.provider {
            Some(_) if config.needs_sign_in() || config.provider.is_some() => {
                Some(Arc::new(Auth::new(config.clone(), metrics.clone())?))
            }
            _ => None,
        };
        let ready = Arc::new(AtomicBool::new(auth.is_none()));
        Ok(Gateway {
            filter: InboundFilter::from_config(&config),
            config,
            routes,
            upstreams,
            proxy,
            auth,
            metrics,
            ready,
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn client_info(&self, peer: SocketAddr, tls: bool) -> ClientInfo {
        let ip = peer.ip().to_canonical();
        let trusted = self
            .config
            .server
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&ip));
        ClientInfo::new(ip, trusted, tls)
    }

    /// Background work: provider discovery and key refresh, secret re-reads.
    fn start_background(self: &Arc<Self>) {
        if let Some(auth) = &self.auth {
            auth.clone().start_background(self.ready.clone());
        }
    }
}

/// Runs the gateway until SIGTERM or SIGINT, then drains.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let listen = config.server.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: listen,
            source,
        })?;
    serve(listener, config, shutdown_signal()).await
}

/// Serves on an already bound listener until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let tls = match &config.server.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
            &t.cert_file,
            &t.key_file,
        )?)),
        None => None,
    };
    let metrics_listen = config.metrics.as_ref().map(|m| m.listen);
    let drain = config.server.drain_timeout;
    let header_timeout = config.server.header_read_timeout;
    let gateway = Arc::new(Gateway::new(config)?);
    gateway.start_background();
    if let Some(addr) = metrics_listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Listen { addr, source })?;
        tokio::spawn(serve_metrics(l, gateway.metrics.clone()));
    }
    let local = listener.local_addr().ok();
    tracing::info!(listen = ?local, tls = tls.is_some(), version = env!("CARGO_PKG_VERSION"), "ssogate is serving");

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();

    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let gw = gateway.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(&builder, watcher, gw, stream, peer, false).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve_connection(&builder, watcher, gw, tls_stream, peer, true).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }

    drop(listener);
    tracing::info!(drain = ?drain, "shutting down: no new connections, draining in-flight requests");
    match tokio::time::timeout(drain, graceful.shutdown()).await {
        Ok(()) => tracing::info!("drained; bye"),
        Err(_) => tracing::warn!("drain time is up; closing the remaining connections"),
    }
    Ok(())
}

async fn serve_connection<S>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    gw: Arc<Gateway>,
    stream: S,
    peer: SocketAddr,
    tls: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let client = Arc::new(gw.client_info(peer, tls));
    let svc = service_fn(move |req| {
        let gw = gw.clone();
        let client = client.clone();
        async move { Ok::<_, Infallible>(handler::handle(&gw, &client, req).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        let mut r = hyper::Response::new(crate::proxy::full(metrics.render()));
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        r
                    } else {
                        pages::GatewayError::NotFound.into_response(false, None)
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
