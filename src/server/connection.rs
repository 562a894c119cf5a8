//! One accepted client connection, from the accept to its close: its TLS handshake (within
//! `header_read_timeout`), then the HTTP/1 loop (`fast`) or hyper (HTTP/2), under the
//! worker's drain, holding its place among `server.max_connections` and its count on the
//! worker while it lives. Never accepts or places connections (`accept_loop`, `balance`).
//!
//! A plain connection and a TLS one are different tasks: a task is as large as its largest
//! state, and a plain connection should not carry room for a TLS handshake for its life.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::{balance, buffers, drain, fast, park, Gateway};
use crate::proxy::Proxy;

/// What every connection of one accept loop shares: one reference per connection.
pub(super) struct Worker {
    pub(super) gw: Arc<Gateway>,
    pub(super) proxy: Arc<Proxy>,
    pub(super) builder: auto::Builder<TokioExecutor>,
    pub(super) drain: drain::Drain,
    /// Connections that may wait for their next request with their request state kept.
    pub(super) lingering: buffers::Places,
    /// Idle connections that may wait in their task for `park::PARK_AFTER` before they park.
    pub(super) waiting: buffers::Places,
    pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(super) header_timeout: Duration,
    /// Where idle plain-HTTP connections wait without a task (`park`), when it could be made.
    pub(super) parking: Option<Arc<park::Parking>>,
}

/// A connection accepted (or handed over) and placed on this worker.
pub(super) struct Accepted {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    /// Counted on this worker until the connection ends.
    pub(super) open: Option<balance::Open>,
    /// Its place among `server.max_connections`, held until the connection ends.
    pub(super) permit: OwnedSemaphorePermit,
    /// When its next request head is due, for one given its task back (`park`); a new one
    /// has `header_read_timeout` from now.
    pub(super) until: Option<Instant>,
}

/// Serves a connection on its own task.
pub(super) fn spawn(w: &Arc<Worker>, conn: Accepted) {
    let w = w.clone();
    match w.tls {
        None => drop(tokio::spawn(plain(w, conn))),
        Some(_) => drop(tokio::spawn(tls(w, conn))),
    }
}

async fn plain(w: Arc<Worker>, conn: Accepted) {
    let Accepted {
        stream,
        peer,
        open,
        permit,
        until,
    } = conn;
    let conn = fast::serve(&w, stream, peer, until);
    if let fast::Served::Idle(stream, until) = w.drain.watch(drain::SelfWatching { conn }).await {
        if let Some(parking) = &w.parking {
            let conn = Accepted {
                stream,
                peer,
                open,
                permit,
                until: None,
            };
            parking.park(&w, conn, until);
        }
    }
}

async fn tls(w: Arc<Worker>, conn: Accepted) {
    let Accepted {
        stream,
        peer,
        open: _open,
        permit: _permit,
        until: _,
    } = conn;
    let Some(acceptor) = &w.tls else {
        return;
    };
    let handshake = tokio::time::timeout(w.header_timeout, acceptor.accept(stream));
    // Boxed: the handshake's state is large and ends with the handshake.
    match Box::pin(handshake).await {
        // HTTP/2 goes to hyper; HTTP/1.1 to the gateway's own loop, as on plain TCP.
        Ok(Ok(tls_stream)) if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
            let serving = super::serve_connection(
                &w.builder,
                &w.drain,
                w.gw.clone(),
                w.proxy.clone(),
                tls_stream,
                peer,
                true,
            );
            Box::pin(serving).await
        }
        Ok(Ok(tls_stream)) => {
            let conn = fast::serve(&w, tls_stream, peer, None);
            // A TLS connection does not park (its session state would go with it).
            let _ = w.drain.watch(drain::SelfWatching { conn }).await;
        }
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

#[cfg(test)]
mod tests {
    /// What lets `accept_loop` skip a setsockopt per connection on a worker's listener.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn accepted_connections_inherit_nodelay_from_a_workers_listener() {
        let listener = super::super::reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
