//! Listeners (plain and TLS, HTTP/1.1 and HTTP/2), the request pipeline, the gateway's own
//! endpoints under `auth_prefix`, pages and graceful shutdown. Never verifies tokens itself:
//! it calls `oidc`, `session`, `policy`, `identity` and `proxy`.

#[cfg(feature = "cognito-admin")]
mod admin;
mod auth;
mod balance;
mod buffers;
mod connection;
mod drain;
mod endpoints;
pub mod explain;
pub(crate) mod fast;
mod front;
mod handler;
mod idle;
mod live;
pub mod pages;
mod park;
mod reload;
mod snapshot;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::proxy::{ClientInfo, Proxy, RequestBody};
use crate::telemetry::Metrics;
use crate::tls::CertFiles;

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
    #[error("cannot start the runtime: {0}")]
    Runtime(String),
}

/// Everything a request needs, shared by all connections: built once at start, except the
/// routes and upstreams, which a config reload swaps (`live`).
pub struct Gateway {
    /// The config as at start. Its routes and `logging.access_log` may have been reloaded
    /// since: read those from `live`; a reload that changes anything else is refused.
    pub config: Arc<Config>,
    /// The routes, upstreams and inbound filter of the current config (`snapshot`).
    live: snapshot::Live,
    /// The upstream client of `serve`'s one listener; workers build their own.
    proxy: Proxy,
    /// Present when any route needs sign-in.
    auth: Option<Arc<Auth>>,
    pub metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    /// SIGTERM came and `shutdown_delay` runs: `/ready` says 503 while requests are served.
    stopping: AtomicBool,
    /// Asks every file watcher (secrets, certificates) to read its files now (SIGHUP).
    reread: Arc<tokio::sync::Notify>,
    /// Asks the config watcher (`reload`) to load the file now (SIGHUP). Kept when it is
    /// busy, so a SIGHUP during a reload is not lost.
    reload_asked: Arc<tokio::sync::Notify>,
    /// One permit per open client connection, `server.max_connections` in all (every
    /// worker's listener shares them).
    connections: Arc<tokio::sync::Semaphore>,
    /// The admin page, with `[admin] enabled = true` and sign-in configured.
    #[cfg(feature = "cognito-admin")]
    admin: Option<crate::admin::page::AdminPage>,
}

impl Gateway {
    pub fn new(config: Config) -> Result<Gateway, ServerError> {
        let config = Arc::new(config);
        let live = snapshot::Live::new(config.clone())?;
        // Its inline pools come with each snapshot (`snapshot::View`).
        let proxy = Proxy::new(&config.upstream, body_rate(&config), 0)?;
        let metrics = Arc::new(Metrics::default());
        let auth = match config.providers.is_empty() {
            false => Some(Auth::shared(config.clone(), metrics.clone())?),
            true => None,
        };
        let ready = Arc::new(AtomicBool::new(auth.is_none()));
        Ok(Gateway {
            live,
            proxy,
            auth,
            metrics,
            ready,
            stopping: AtomicBool::new(false),
            reread: Arc::new(tokio::sync::Notify::new()),
            reload_asked: Arc::new(tokio::sync::Notify::new()),
            connections: Arc::new(tokio::sync::Semaphore::new(config.server.max_connections)),
            #[cfg(feature = "cognito-admin")]
            admin: admin::page(&config),
            config,
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// After SIGTERM: `/ready` says 503 for `shutdown_delay` while everything is served as
    /// before, so whatever routes traffic here stops first; then the drain may begin.
    async fn before_the_drain(&self, signals: &mut StopSignals) {
        let delay = self.config.server.shutdown_delay;
        if delay.is_zero() {
            return;
        }
        self.stopping.store(true, Ordering::Relaxed);
        tracing::info!(delay = ?delay, "stopping: /ready answers 503 while requests are still served (server.shutdown_delay); then the drain");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = signals.recv() => tracing::info!("a second signal: draining now"),
        }
    }

    fn client_info(&self, peer: SocketAddr, tls: bool) -> ClientInfo {
        let ip = peer.ip().to_canonical();
        let trusted = self
            .config
            .server
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&ip));
        ClientInfo::new(
            ip,
            trusted,
            tls,
            self.config.server.trusted_forwarded_headers,
        )
    }

    /// Background work: provider discovery and key refresh, secret re-reads.
    fn start_background(self: &Arc<Self>) {
        if let Some(auth) = &self.auth {
            auth.clone()
                .start_background(self.ready.clone(), self.reread.clone());
        }
        reread_on_sighup(self.reread.clone(), self.reload_asked.clone());
    }
}

/// Runs `ssogate serve` until SIGTERM or SIGINT, then drains. `file` is where `config`
/// was loaded from: it is loaded again at SIGHUP and when its bytes change (`reload`).
///
/// Workers (`default_workers`), each a single-threaded runtime with its own listening socket
/// (`SO_REUSEPORT`) and its own upstream connection pool, as nginx runs its workers:
/// a request never crosses threads. A control thread handles signals, the provider's
/// background loading and the metrics listener.
pub fn run(config: Config, file: PathBuf) -> Result<(), ServerError> {
    let workers = config.server.workers.unwrap_or_else(default_workers);
    let listen = config.server.listen;
    let (tls, cert_files) = load_tls(&config)?;
    let metrics_listen = config.metrics.as_ref().map(|m| m.listen);
    let gateway = Arc::new(Gateway::new(config)?);
    // Listened for before any worker serves: a SIGTERM that came before would end the
    // process at once (the default action), without the drain.
    let control = runtime()?;
    let mut signals = {
        let _in_runtime = control.enter();
        StopSignals::listen()
    };
    // The metrics port is bound before any worker serves: whoever sees the gateway answer
    // can scrape it.
    let metrics_listener = {
        let _in_runtime = control.enter();
        bind_metrics(metrics_listen)?
    };
    // SO_REUSEPORT would let a second ssogate share a busy port silently: a plain bind first
    // makes "address in use" an error, as users expect.
    drop(
        std::net::TcpListener::bind(listen).map_err(|source| ServerError::Listen {
            addr: listen,
            source,
        })?,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let (bound_tx, bound_rx) = std::sync::mpsc::channel::<Result<(), ServerError>>();
    let open = Arc::new(crate::telemetry::OpenConnections::new(workers));
    let _ = gateway.metrics.open_connections.set(open.clone());
    let (balance, inboxes) = balance::Balance::new(open);
    let mut threads = Vec::with_capacity(workers);
    for (i, inbox) in inboxes.into_iter().enumerate() {
        let placement = Placement {
            balance: balance.clone(),
            me: i,
            inbox,
        };
        let gw = gateway.clone();
        let tls = tls.clone();
        let mut stop = stop_rx.clone();
        let bound = bound_tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ssogate-worker-{i}"))
            .spawn(move || {
                // Provider and Redis calls from this worker go out on its own connections.
                crate::runtime_slot::set(i + 1);
                let rt = match runtime() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = bound.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match reuseport_listener(listen) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = bound.send(Err(e));
                            return;
                        }
                    };
                    let _ = bound.send(Ok(()));
                    // A client per worker (with inline pools per snapshot, made by the
                    // worker's first request on it); the shared one only if this one cannot
                    // be built.
                    let proxy = Proxy::new(&gw.config.upstream, body_rate(&gw.config), 0)
                        .unwrap_or_else(|_| gw.proxy.clone());
                    let shutdown = async move {
                        let _ = stop.changed().await;
                    };
                    // This thread's coarse clock and deadlines (see `coarse`).
                    let ticker = tokio::spawn(crate::coarse::ticker());
                    tokio::task::yield_now().await;
                    accept_loop(listener, Some(placement), gw, proxy, tls, shutdown).await;
                    ticker.abort();
                });
            })
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        threads.push(spawned);
    }
    drop(bound_tx);
    let mut failure = None;
    for _ in 0..workers {
        match bound_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(ServerError::Runtime("a worker thread died at start".into())),
        }
    }
    let stop_workers = move || {
        let _ = stop_tx.send(());
        for t in threads {
            let _ = t.join();
        }
    };
    match failure {
        Some(e) => {
            stop_workers();
            Err(e)
        }
        None => control.block_on(async {
            let started = async {
                gateway.start_background();
                watch_certificates(
                    cert_files,
                    gateway.config.server.secret_poll_interval,
                    gateway.reread.clone(),
                );
                reload::watch(gateway.clone(), file);
                if let Some(l) = metrics_listener {
                    tokio::spawn(serve_metrics(l, gateway.metrics.clone()));
                }
                tracing::info!(listen = %listen, workers, tls = tls.is_some(), version = env!("CARGO_PKG_VERSION"), "ssogate is serving");
                signals.recv().await;
                gateway.before_the_drain(&mut signals).await;
                Ok(())
            }
            .await;
            // Drain while this runtime still runs: the background tasks live here (the
            // provider's metadata and keys), and draining requests may wait on them. Each
            // worker's provider and Redis connections are its own (`runtime_slot`).
            let _ = tokio::task::spawn_blocking(stop_workers).await;
            started
        }),
    }
}

/// `server.min_body_rate`, held against a body once `header_read_timeout` has passed.
fn body_rate(config: &Config) -> crate::proxy::BodyRate {
    crate::proxy::BodyRate {
        min: config.server.min_body_rate,
        grace: config.server.header_read_timeout,
    }
}

/// One worker per CPU core the process may use (cgroup quotas included), as nginx's
/// `worker_processes auto`. On the 2-core bench, against two per core: 13-19% less CPU per
/// new connection (plain HTTP 0.95x -> 1.05x nginx, TLS 270 -> 235 CPU-us), 5% less per
/// keep-alive request, WebSocket set-ups 0.84x -> 0.92x. The cost: with every core saturated
/// (wrk, upstream and gateway on the same 2 cores), a worker that used up its time slice
/// stalls more connections while it waits, and the p99 of one round in three rose to about
/// nginx's. `server.workers` picks the other side (ARCHITECTURE.md, "Workers").
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn runtime() -> Result<tokio::runtime::Runtime, ServerError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServerError::Runtime(e.to_string()))
}

/// A listening socket that other workers may bind too (the kernel spreads connections).
fn reuseport_listener(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let listen_err = |source| ServerError::Listen { addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(listen_err)?;
    socket.set_reuseaddr(true).map_err(listen_err)?;
    #[cfg(unix)]
    socket.set_reuseport(true).map_err(listen_err)?;
    socket.set_nodelay(true).map_err(listen_err)?;
    socket.bind(addr).map_err(listen_err)?;
    socket.listen(1024).map_err(listen_err)
}

/// `[server.tls]`: the acceptor every worker uses, and the certificate files behind it.
fn load_tls(
    config: &Config,
) -> Result<(Option<tokio_rustls::TlsAcceptor>, Option<Arc<CertFiles>>), ServerError> {
    Ok(match &config.server.tls {
        Some(t) => {
            let files = Arc::new(CertFiles::load(&t.cert_file, &t.key_file)?);
            let acceptor =
                tokio_rustls::TlsAcceptor::from(crate::tls::server_config(files.clone())?);
            (Some(acceptor), Some(files))
        }
        None => (None, None),
    })
}

/// Until files should be read again: `every` has passed (never, when zero), or SIGHUP asked.
async fn until_reread(every: Duration, asked: &tokio::sync::Notify) {
    if every.is_zero() {
        asked.notified().await;
    } else {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = asked.notified() => {}
        }
    }
}

/// SIGHUP: every file watcher reads its files now, as nginx re-reads its certificates on a
/// reload, and `ssogate serve` loads its config file again (`reload`).
fn reread_on_sighup(reread: Arc<tokio::sync::Notify>, reload: Arc<tokio::sync::Notify>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!(
                "SIGHUP: reading the config file, the secret files and the TLS certificates again"
            );
            reread.notify_waiters();
            reload.notify_one();
        }
    });
}

/// Reads the TLS certificate files again every `every` (as `*_file` secrets are) and at
/// SIGHUP: a renewed certificate is used for new connections; one that does not load is
/// logged once and the current one kept.
fn watch_certificates(
    files: Option<Arc<CertFiles>>,
    every: Duration,
    reread: Arc<tokio::sync::Notify>,
) {
    let Some(files) = files else {
        return;
    };
    tokio::spawn(async move {
        let mut last_error = None;
        loop {
            until_reread(every, &reread).await;
            let reading = files.clone();
            let result = match tokio::task::spawn_blocking(move || reading.reload()).await {
                Ok(result) => result,
                Err(e) => {
                    tracing::error!(error = %e, "reading the TLS certificate files failed; keeping the current certificate");
                    continue;
                }
            };
            match result {
                Ok(changed) => {
                    if changed {
                        tracing::info!(
                            "TLS certificate files changed: new connections get the new certificate"
                        );
                    }
                    last_error = None;
                }
                Err(e) => {
                    let e = e.to_string();
                    if last_error.as_ref() != Some(&e) {
                        tracing::warn!(error = %e, "cannot load the TLS certificate files again; keeping the current certificate");
                        last_error = Some(e);
                    }
                }
            }
        }
    });
}

/// Whether the wait for a place among `server.max_connections` has been logged.
static CONNECTIONS_WAITED: AtomicBool = AtomicBool::new(false);

/// Serves on an already bound listener, on the current runtime, until `shutdown` completes
/// (used by `ssogate demo` and by anything embedding the gateway).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let (tls, cert_files) = load_tls(&config)?;
    let metrics_listen = config.metrics.as_ref().map(|m| m.listen);
    let gateway = Arc::new(Gateway::new(config)?);
    gateway.start_background();
    watch_certificates(
        cert_files,
        gateway.config.server.secret_poll_interval,
        gateway.reread.clone(),
    );
    start_metrics(metrics_listen, &gateway).await?;
    let local = listener.local_addr().ok();
    let local = local.map_or_else(String::new, |a| a.to_string());
    tracing::info!(listen = %local, tls = tls.is_some(), version = env!("CARGO_PKG_VERSION"), "ssogate is serving");
    let proxy = gateway.proxy.clone();
    accept_loop(listener, None, gateway, proxy, tls, shutdown).await;
    Ok(())
}

/// Where a worker's connections are served: `balance` says which worker takes each accepted
/// connection, and `inbox` brings the connections other workers hand to this one.
struct Placement {
    balance: Arc<balance::Balance>,
    me: usize,
    inbox: tokio::sync::mpsc::UnboundedReceiver<balance::Handover>,
}

impl Placement {
    /// Keeps a connection this worker accepted, or hands it to a worker with fewer.
    fn place(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Option<(
        tokio::net::TcpStream,
        balance::Open,
        tokio::sync::OwnedSemaphorePermit,
    )> {
        let (target, open) = self.balance.place(self.me);
        if target == self.me {
            return Some((stream, open, permit));
        }
        // A stream that cannot leave this worker's poller is closed (dropped) here.
        let stream = stream.into_std().ok()?;
        match self.balance.hand_over(balance::Handover {
            stream,
            peer,
            open,
            permit,
        }) {
            Ok(()) => None,
            // That worker has stopped: serve it here.
            Err(h) => {
                let stream = tokio::net::TcpStream::from_std(h.stream).ok()?;
                Some((stream, h.open.moved_to(self.me), h.permit))
            }
        }
    }
}

/// The next connection another worker hands over; never, without a placement.
async fn handed_over(placement: &mut Option<Placement>) -> Option<balance::Handover> {
    match placement {
        Some(p) => p.inbox.recv().await,
        None => std::future::pending().await,
    }
}

/// Accepts connections until `shutdown`, then stops accepting and drains. hyper's
/// header-read timeout runs on the coarse clock on a worker, on tokio's timers elsewhere.
async fn accept_loop(
    listener: TcpListener,
    mut placement: Option<Placement>,
    gateway: Arc<Gateway>,
    proxy: Proxy,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let drain_timeout = gateway.config.server.drain_timeout;
    let header_timeout = gateway.config.server.header_read_timeout;
    let limits = &gateway.config.server;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(crate::coarse::Timer)
        .header_read_timeout(header_timeout)
        .max_buf_size(limits.max_request_head)
        .max_headers(limits.max_request_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_request_head as u32);
    // Idle plain-HTTP connections wait parked, without a task (TLS ones keep theirs).
    let parking = match tls {
        Some(_) => None,
        None => park::Parking::new(gateway.metrics.clone())
            .inspect_err(|e| tracing::warn!(error = %e, "no parking for idle connections; they keep their tasks"))
            .ok(),
    };
    let worker = Arc::new(connection::Worker {
        gw: gateway.clone(),
        proxy: Arc::new(proxy),
        builder,
        drain: drain::Drain::default(),
        lingering: buffers::Places::new(buffers::LINGERING),
        waiting: buffers::Places::new(park::WAITING),
        tls,
        header_timeout,
        parking: parking.as_ref().map(|(parking, _)| parking.clone()),
    });
    if let Some((parking, poller)) = parking {
        // Watched: the stop closes the parked connections and ends the task.
        let conn = parking.run(poller, worker.clone());
        tokio::spawn(worker.drain.watch(drain::SelfWatching { conn }));
    }

    // A worker's listener has TCP_NODELAY (`reuseport_listener`), and on Linux an accepted
    // socket starts with its listener's options: no setsockopt per connection then.
    let nodelay_inherited = cfg!(target_os = "linux") && placement.is_some();
    tokio::pin!(shutdown);
    let permits = gateway.connections.clone();
    let mut permit = None;
    loop {
        // A place among `server.max_connections` before the next accept: with all taken, new
        // connections wait in the listen queue (and then the kernel's) until one closes.
        let held = match permit.take() {
            Some(held) => held,
            None => match permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    gateway.metrics.connections_waited.add(1);
                    if !CONNECTIONS_WAITED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(max = gateway.config.server.max_connections, "server.max_connections are open: new connections wait until one closes (counted in ssogate_connections_waited_total; said once)");
                    }
                    tokio::select! {
                        _ = &mut shutdown => break,
                        p = permits.clone().acquire_owned() => match p {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                    }
                }
            },
        };
        let (stream, peer, open, held) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if !nodelay_inherited {
                        let _ = stream.set_nodelay(true);
                    }
                    match &placement {
                        None => (stream, peer, None, held),
                        Some(p) => match p.place(stream, peer, held) {
                            Some((stream, open, held)) => (stream, peer, Some(open), held),
                            None => continue,
                        },
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    permit = Some(held);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(h) = handed_over(&mut placement) => {
                // Not accepted here: this worker's own place is kept for its next accept.
                permit = Some(held);
                match tokio::net::TcpStream::from_std(h.stream) {
                    Ok(stream) => (stream, h.peer, Some(h.open), h.permit),
                    Err(e) => {
                        tracing::debug!(peer = %h.peer, error = %e, "a handed-over connection could not be registered");
                        continue;
                    }
                }
            }
        };
        let accepted = connection::Accepted {
            stream,
            peer,
            open,
            permit: held,
            until: None,
        };
        connection::spawn(&worker, accepted);
    }

    drop(listener);
    // Other workers now serve what they accept themselves.
    drop(placement);
    tracing::info!(drain = ?drain_timeout, "shutting down: no new connections, draining in-flight requests");
    match tokio::time::timeout(drain_timeout, worker.drain.stop()).await {
        Ok(()) => tracing::info!("drained; bye"),
        Err(_) => tracing::warn!("drain time is up; closing the remaining connections"),
    }
}

async fn serve_connection<S>(
    builder: &auto::Builder<TokioExecutor>,
    drain: &drain::Drain,
    gw: Arc<Gateway>,
    proxy: Arc<Proxy>,
    stream: S,
    peer: SocketAddr,
    tls: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let client = Arc::new(gw.client_info(peer, tls));
    let idle_timeout = gw.config.server.idle_timeout;
    let svc = service_fn(move |req| {
        let gw = gw.clone();
        let client = client.clone();
        let proxy = proxy.clone();
        async move {
            let head_request = req.method() == http::Method::HEAD;
            let resp = handler::handle(&gw, &proxy, &client, req.map(RequestBody::Hyper)).await;
            Ok::<_, Infallible>(crate::proxy::for_hyper(resp, head_request))
        }
    });
    let (stream, moved) = idle::Counted::new(stream);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    let conn = idle::IdleClosing::new(conn, moved, idle_timeout);
    if let Err(e) = drain.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Binds the Prometheus listener, when `[metrics] listen` is set (inside a runtime).
fn bind_metrics(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, ServerError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listen = |source| ServerError::Listen { addr, source };
    let l = std::net::TcpListener::bind(addr).map_err(listen)?;
    l.set_nonblocking(true).map_err(listen)?;
    TcpListener::from_std(l).map(Some).map_err(listen)
}

/// The Prometheus listener, when `[metrics] listen` is set.
async fn start_metrics(addr: Option<SocketAddr>, gateway: &Gateway) -> Result<(), ServerError> {
    if let Some(addr) = addr {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Listen { addr, source })?;
        tokio::spawn(serve_metrics(l, gateway.metrics.clone()));
    }
    Ok(())
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

/// SIGTERM and SIGINT, listened for from when this is made.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Needs a runtime's context (its signal driver).
    fn listen() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(&mut self.term) => {}
                () = next(&mut self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
