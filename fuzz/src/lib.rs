//! The reference side of the differential HTTP targets: hyper's HTTP/1 server and client,
//! driven over an in-memory duplex pipe on a current-thread runtime whose clock is paused.
//! A paused clock advances only when every task waits, so "the peer sent everything and
//! waited" is a point in time, and a hang shows as a timeout instead of a stuck fuzzer.

use std::cell::RefCell;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::time::{sleep, timeout, Instant};

/// Requested after the fuzz input on the same connection: hyper serves it only when it kept
/// the connection open after the input's request and took exactly the bytes we expected.
pub const SENTINEL: &[u8] = b"GET /__sentinel__ HTTP/1.1\r\nhost: s\r\n\r\n";

/// How long (virtual time) a peer waits before it closes its side.
const SETTLE: Duration = Duration::from_secs(10);
/// Anything not finished by then (virtual time) is hyper hanging.
const HANG: Duration = Duration::from_secs(600);

thread_local! {
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| {
        let mut rt = rt.borrow_mut();
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                // Building a current-thread runtime fails only without OS resources.
                .expect("a tokio runtime")
        });
        rt.block_on(f)
    })
}

/// What hyper's HTTP/1 server made of the bytes a client sent before closing its side.
#[derive(Debug)]
pub struct Served {
    /// The request heads hyper handed to the service, in order.
    pub requests: Vec<http::request::Parts>,
    /// What hyper wrote back.
    pub written: Vec<u8>,
    /// The connection's own result (`Err` for a parse error, among others).
    pub result: Result<(), String>,
}

/// Sends `input`, waits until hyper has done all it can with it, then closes the client's
/// side and reads what hyper answered.
pub fn hyper_serve(input: &[u8]) -> Served {
    block_on(async {
        let (client, server) = tokio::io::duplex(1 << 20);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let record = record.clone();
            async move {
                record
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(req.into_parts().0);
                Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), service);
        let peer = async move {
            let (mut rd, mut wr) = tokio::io::split(client);
            let reading = async {
                let mut written = Vec::new();
                let _ = rd.read_to_end(&mut written).await;
                written
            };
            let writing = async {
                let _ = wr.write_all(input).await;
                sleep(SETTLE).await;
                let _ = wr.shutdown().await;
            };
            tokio::join!(reading, writing).0
        };
        let (result, written) = timeout(HANG, async { tokio::join!(conn, peer) })
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "hyper's HTTP/1 server did not finish with b\"{}\"",
                    input.escape_ascii()
                )
            });
        let requests = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
        Served {
            requests,
            written,
            result: result.map_err(|e| e.to_string()),
        }
    })
}

/// What hyper's HTTP/1 client made of an upstream's bytes, sent in answer to one request.
#[derive(Debug)]
pub struct Fetched {
    /// `Err`: hyper refused the response head (or the connection ended before one).
    pub head: Result<(StatusCode, HeaderMap), String>,
    /// The body's bytes as hyper gave them.
    pub body: Vec<u8>,
    /// `Err` when the body ended in an error.
    pub body_end: Result<(), String>,
    /// The body ended by its own framing, before the upstream closed the connection.
    pub framed: bool,
    /// After the body, hyper would send the next request on this connection.
    pub reusable: bool,
}

/// Sends a GET (or HEAD) for `/`, answers it with `upstream`, keeps the connection open
/// for a while, then closes it.
pub fn hyper_fetch(upstream: &[u8], head_request: bool) -> Fetched {
    block_on(async {
        let (client, server) = tokio::io::duplex(1 << 20);
        let upstream = upstream.to_vec();
        let origin = tokio::spawn(async move {
            let (mut rd, mut wr) = tokio::io::split(server);
            // Wait for the request head before answering, as an upstream does.
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = wr.write_all(&upstream).await;
            sleep(SETTLE).await;
            let _ = wr.shutdown().await;
            // Whatever hyper sends next (a second request) is read and dropped.
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        });
        let fetched = timeout(HANG, fetch(client, head_request))
            .await
            .unwrap_or_else(|_| panic!("hyper's HTTP/1 client did not finish"));
        origin.abort();
        fetched
    })
}

async fn fetch(io: tokio::io::DuplexStream, head_request: bool) -> Fetched {
    let mut fetched = Fetched {
        head: Err(String::new()),
        body: Vec::new(),
        body_end: Ok(()),
        framed: false,
        reusable: false,
    };
    let (mut sender, conn) = match hyper::client::conn::http1::Builder::new()
        .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
    {
        Ok(parts) => parts,
        Err(e) => {
            fetched.head = Err(format!("handshake: {e}"));
            return fetched;
        }
    };
    let conn = tokio::spawn(conn);
    let req = Request::builder()
        .method(if head_request {
            Method::HEAD
        } else {
            Method::GET
        })
        .uri("/")
        .header("host", "upstream")
        .body(Empty::new())
        // A fixed, valid request.
        .expect("a request");
    let start = Instant::now();
    let resp = match sender.send_request(req).await {
        Ok(resp) => resp,
        Err(e) => {
            fetched.head = Err(chain(&e));
            conn.abort();
            return fetched;
        }
    };
    let (parts, mut body) = resp.into_parts();
    fetched.head = Ok((parts.status, parts.headers));
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    fetched.body.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                fetched.body_end = Err(chain(&e));
                break;
            }
        }
    }
    fetched.framed = fetched.body_end.is_ok() && start.elapsed() < SETTLE;
    if fetched.framed {
        // Let hyper read whatever followed the body before asking.
        sleep(Duration::from_secs(1)).await;
        fetched.reusable = !sender.is_closed()
            && matches!(
                timeout(Duration::from_millis(1), sender.ready()).await,
                Ok(Ok(()))
            );
    }
    conn.abort();
    fetched
}

/// An error and its sources, for messages and for telling hyper's limits from its refusals.
fn chain(e: &dyn std::error::Error) -> String {
    ssogate::telemetry::error_chain(e)
}
