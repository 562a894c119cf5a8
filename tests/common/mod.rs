//! Test harness shared by the integration tests: the real `ssogate` binary on a free
//! loopback port, small real upstreams (HTTP echo, WebSocket echo) running in the test
//! process, an HTTP client, and a raw HTTP/1.1 exchange for requests no client library
//! would send as written.
//!
//! Everything listens on 127.0.0.1 and on ports the OS hands out; nothing here uses a fixed
//! port. Upstreams run on their own thread and runtime, so a test may block (on a raw socket,
//! on `Gateway::start`) without stalling them.
//!
//! Each test file includes this with `mod common;` and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// A port that was free a moment ago on 127.0.0.1, for a process the test starts later.
///
/// Taken below the kernel's ephemeral range, so that nothing binding port 0 meanwhile (the
/// test provider, an echo upstream, another test's gateway) can be handed the same port
/// before it is used; each test binary starts at its own place in that band and never hands
/// out a port twice. When the ephemeral range leaves no room below it, port 0 it is, and
/// `Gateway::start` retries with another port if someone takes it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const BAND: std::ops::Range<u32> = 20_000..32_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(0);
    if ephemeral_low >= BAND.end {
        let width = BAND.end - BAND.start;
        let _ = NEXT.compare_exchange(
            u32::MAX,
            (std::process::id().wrapping_mul(7919)) % width,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        for _ in 0..width {
            let port = BAND.start + NEXT.fetch_add(1, Ordering::Relaxed) % width;
            if StdTcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
                return port as u16;
            }
        }
    }
    let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// An HTTP client for talking to the gateway: no redirects followed (a 302 is an answer to
/// look at), no proxy from the environment, no TLS.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("reqwest client")
}

// ---------------------------------------------------------------------------------------
// The gateway process
// ---------------------------------------------------------------------------------------

/// The `ssogate serve` process, started from a config and killed when dropped.
pub struct Gateway {
    pub port: u16,
    /// `http://127.0.0.1:{port}`, without a trailing slash.
    pub base: String,
    /// Where the config was written (kept until the gateway is dropped).
    pub config_path: PathBuf,
    child: Child,
    stderr_log: Arc<Mutex<String>>,
    auth_prefix: String,
    _dir: tempfile::TempDir,
}

/// How long a gateway gets to answer its first ping.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How `Gateway::start_waiting` decides that the gateway is up.
#[derive(Debug, Clone)]
pub enum Wait {
    /// `GET {auth_prefix}/ping` over plain HTTP answers 200 (what `start` does).
    Ping,
    /// `GET {auth_prefix}/ping` over TLS (server name `localhost`, no ALPN) answers 200,
    /// trusting only the certificates in this PEM file. For `[server.tls]` configs; `base`
    /// then starts with `https://`.
    TlsPing { ca_file: PathBuf },
    /// The port accepts a TCP connection (says nothing about what is listening).
    TcpConnect,
}

impl Gateway {
    /// Starts `ssogate serve` with this config.
    ///
    /// Every `{port}` in the text is replaced by a free port, so a config says
    /// `listen = "127.0.0.1:{port}"` (and, for sign-in tests, `public_url =
    /// "http://127.0.0.1:{port}"`). A config without the placeholder must set
    /// `server.listen` itself. Returns once `{auth_prefix}/ping` answers 200; panics with the
    /// gateway's stderr when it does not within 15 s.
    pub fn start(config_toml: &str) -> Gateway {
        Self::start_with_env(config_toml, &[])
    }

    /// Like `start`, with extra environment variables for the process (e.g. `SSOGATE_*`
    /// overrides, `RUST_LOG`). `SSOGATE_*` and `RUST_LOG` from the test's own environment are
    /// not passed on, so tests see the same gateway wherever they run.
    pub fn start_with_env(config_toml: &str, env: &[(&str, &str)]) -> Gateway {
        Self::start_waiting(config_toml, env, Wait::Ping)
    }

    /// Like `start`, for a config with `[server.tls]`: waits for the ping over TLS, trusting
    /// only `ca_file` (PEM), and `base` is `https://127.0.0.1:{port}`.
    pub fn start_tls(config_toml: &str, ca_file: impl Into<PathBuf>) -> Gateway {
        Self::start_waiting(
            config_toml,
            &[],
            Wait::TlsPing {
                ca_file: ca_file.into(),
            },
        )
    }

    /// Like `start_with_env`, deciding that the gateway is up as `wait` says.
    pub fn start_waiting(config_toml: &str, env: &[(&str, &str)], wait: Wait) -> Gateway {
        let templated = config_toml.contains("{port}");
        // A free port can be taken by someone else before the gateway binds it: try again.
        let attempts = if templated { 3 } else { 1 };
        let mut last_failure = String::new();
        for _ in 0..attempts {
            let port = free_port();
            let text = config_toml.replace("{port}", &port.to_string());
            match Self::try_start(&text, env, &wait) {
                Ok(gw) => return gw,
                Err(failure) if templated && failure.contains("cannot listen") => {
                    last_failure = failure;
                }
                Err(failure) => panic!("{failure}"),
            }
        }
        panic!("{last_failure}")
    }

    fn try_start(config_text: &str, env: &[(&str, &str)], wait: &Wait) -> Result<Gateway, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("ssogate.toml");
        std::fs::write(&config_path, config_text).expect("write config");

        let listen_override = env
            .iter()
            .find(|(k, _)| *k == "SSOGATE_SERVER__LISTEN")
            .map(|(_, v)| v.to_string());
        let (listen, auth_prefix) = listen_and_prefix(config_text, listen_override);
        let port = listen.port();
        assert!(
            listen.ip().is_loopback() && port != 0,
            "tests listen on 127.0.0.1 with a port from free_port(); got {listen}"
        );

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssogate"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("SSOGATE_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ssogate");
        let stderr_log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = stderr_log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });

        let scheme = match wait {
            Wait::TlsPing { .. } => "https",
            Wait::Ping | Wait::TcpConnect => "http",
        };
        let tls_client = match wait {
            Wait::TlsPing { ca_file } => Some(tls_client_config(ca_file)),
            Wait::Ping | Wait::TcpConnect => None,
        };
        let mut gw = Gateway {
            port,
            base: format!("{scheme}://127.0.0.1:{port}"),
            config_path,
            child,
            stderr_log,
            auth_prefix,
            _dir: dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let ping = format!("{}/ping", gw.auth_prefix);
        loop {
            if let Ok(Some(status)) = gw.child.try_wait() {
                // Let the reader thread collect the last words.
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "ssogate exited during start with {status}; stderr:\n{}",
                    gw.logs()
                ));
            }
            let ping_request =
                format!("GET {ping} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let up = match (wait, &tls_client) {
                (Wait::Ping, _) => {
                    matches!(try_raw_request(gw.port, &ping_request), Ok(r) if r.status == 200)
                }
                (Wait::TlsPing { .. }, Some(config)) => matches!(
                    try_raw_tls_request(gw.port, config.clone(), &ping_request),
                    Ok(r) if r.status == 200
                ),
                (Wait::TlsPing { .. }, None) => unreachable!("TLS client config made above"),
                (Wait::TcpConnect, _) => StdTcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], gw.port)),
                    Duration::from_secs(2),
                )
                .is_ok(),
            };
            if up {
                return Ok(gw);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ssogate did not answer {ping} ({wait:?}) on port {} within {START_TIMEOUT:?}; stderr:\n{}",
                    gw.port,
                    gw.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `{base}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET {auth_prefix}/userinfo` with `client`'s cookies, as JSON.
    pub async fn userinfo(&self, client: &reqwest::Client) -> serde_json::Value {
        let url = self.url(&format!("{}/userinfo", self.auth_prefix));
        let resp = client.get(url).send().await.expect("userinfo request");
        resp.json().await.expect("userinfo JSON")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the gateway wrote to stderr so far (its log, JSON lines with the default
    /// test configs).
    pub fn logs(&self) -> String {
        self.stderr_log.lock().unwrap().clone()
    }

    /// The log lines that are JSON objects.
    pub fn json_logs(&self) -> Vec<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.is_object())
            .collect()
    }

    /// Waits until a JSON log line satisfies `pred` (logging is asynchronous) and returns it;
    /// panics with the whole log after `timeout`.
    pub fn wait_for_log(
        &self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.json_logs().into_iter().find(|l| pred(l)) {
                return line;
            }
            if Instant::now() > deadline {
                panic!(
                    "no matching log line within {timeout:?}; log:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (5 s at most) for a JSON log line whose message contains `text`; returns it.
    pub fn wait_for_message(&self, text: &str) -> serde_json::Value {
        self.wait_for_log(Duration::from_secs(5), |l| {
            l["message"].as_str().is_some_and(|m| m.contains(text))
        })
    }

    /// Polls `{auth_prefix}/ready` until it answers 200 (sign-in configs become ready once the
    /// provider's metadata and keys are fetched); panics with the log after `timeout`.
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let path = format!("{}/ready", self.auth_prefix);
        loop {
            let r = raw_request(
                self.port,
                &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
            );
            if r.status == 200 {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{path} still answers {} after {timeout:?}: {}; log:\n{}",
                    r.status,
                    r.text(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Peak resident memory of the gateway process so far (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:") * 1024
    }

    /// Asks the gateway to drain and stop, as Kubernetes does.
    pub fn sigterm(&mut self) {
        self.signal("TERM");
    }

    /// Sends the gateway a signal (`TERM`, `HUP`...) with the `kill` command, so the tests
    /// need no `unsafe` or libc.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// After a stop signal: the process ends within 10 s with status 0 (the log when not).
    pub fn expect_clean_exit(&mut self) {
        let exit = self
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("still running 10 s after SIGTERM; log:\n{}", self.logs()));
        assert_eq!(exit.code(), Some(0), "{exit:?}; log:\n{}", self.logs());
    }

    /// The exit status, once the process has ended within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Kills this child only (by its PID); harmless when it has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `server.listen` and `server.auth_prefix` as the gateway will read them.
fn listen_and_prefix(config_text: &str, listen_override: Option<String>) -> (SocketAddr, String) {
    let doc: toml::Value = config_text
        .parse()
        .unwrap_or_else(|e| panic!("the test config is not TOML: {e}\n{config_text}"));
    let server = doc.get("server");
    let listen = listen_override
        .or_else(|| {
            server
                .and_then(|s| s.get("listen"))
                .and_then(|l| l.as_str())
                .map(str::to_string)
        })
        .expect("the test config needs server.listen, e.g. listen = \"127.0.0.1:{port}\"");
    let listen = listen
        .parse()
        .unwrap_or_else(|_| panic!("server.listen {listen:?} is not IP:PORT"));
    let prefix = server
        .and_then(|s| s.get("auth_prefix"))
        .and_then(|p| p.as_str())
        .unwrap_or("/oauth2")
        .trim_end_matches('/')
        .to_string();
    (listen, prefix)
}

/// A `VmXxx:` value of /proc/<pid>/status, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1, for requests exactly as written (header case, dot segments, bad escapes)
// ---------------------------------------------------------------------------------------

/// A response read off a raw socket.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Header names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// Sends `request` as written (it should say `Connection: close`) and reads the answer to
/// the end of the connection. Panics when the exchange fails.
pub fn raw_request(port: u16, request: &str) -> RawResponse {
    try_raw_request(port, request)
        .unwrap_or_else(|e| panic!("raw request to port {port} failed: {e}\n{request}"))
}

pub fn try_raw_request(port: u16, request: &str) -> std::io::Result<RawResponse> {
    let bytes = raw_exchange(port, request.as_bytes())?;
    parse_response(&bytes).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not an HTTP response: {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        )
    })
}

/// Writes `bytes`, then reads until the peer closes (or 10 s pass without data).
pub fn raw_exchange(port: u16, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = StdTcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(bytes)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// A rustls client config (ring provider, no ALPN) trusting only the certificates in
/// `ca_file` (PEM). webpki accepts a self-signed server certificate as its own trust anchor
/// only when it is not a CA (`basicConstraints CA:FALSE`), else `CaUsedAsEndEntity`.
pub fn tls_client_config(ca_file: &std::path::Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca_file)
        .unwrap_or_else(|e| panic!("read {}: {e}", ca_file.display()))
    {
        let cert = cert.unwrap_or_else(|e| panic!("PEM in {}: {e}", ca_file.display()));
        roots.add(cert).expect("add trusted certificate");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// `try_raw_request` over TLS (server name `localhost`), blocking.
pub fn try_raw_tls_request(
    port: u16,
    config: Arc<rustls::ClientConfig>,
    request: &str,
) -> std::io::Result<RawResponse> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let tcp = StdTcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request.as_bytes())?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // A peer that closes without close_notify: keep what arrived.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse_response(&out).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response: {:?}", String::from_utf8_lossy(&out)),
        )
    })
}

fn parse_response(bytes: &[u8]) -> Option<RawResponse> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &bytes[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

// ---------------------------------------------------------------------------------------
// Upstreams in the test process
// ---------------------------------------------------------------------------------------

/// Response body of a test upstream.
pub type UpstreamBody = BoxBody<Bytes, std::io::Error>;

/// What an upstream saw of one request (its head; bodies are only counted by `echo`).
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: Method,
    /// Path and query exactly as received.
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
}

impl SeenRequest {
    /// A header's value (the first, when repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A real HTTP/1.1 server on 127.0.0.1, on its own thread and runtime, stopped when dropped.
pub struct Upstream {
    pub port: u16,
    /// `http://127.0.0.1:{port}`: what a route's `upstream` says.
    pub url: String,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    _server: LoopbackServer,
}

/// A server on 127.0.0.1:0 with its own thread and runtime, handing each accepted
/// connection to `on_connection`; stopped (with its open connections) when dropped.
struct LoopbackServer {
    port: u16,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    fn start<F, Fut>(on_connection: F) -> LoopbackServer
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind a loopback server");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => match accepted {
                            Ok((s, _)) => s,
                            Err(_) => continue,
                        },
                    };
                    tokio::spawn(on_connection(stream));
                }
            });
        });
        LoopbackServer {
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Dropping the runtime at the end of the thread ends its open connections too.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Upstream {
    /// An upstream with the default behaviour, `echo`.
    pub fn echo() -> Upstream {
        Self::start(echo)
    }

    /// An upstream answering every request with `handler`. Handlers can fall back to `echo`.
    pub fn start<F, Fut>(handler: F) -> Upstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<UpstreamBody>> + Send + 'static,
    {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let record = seen.clone();
        let server = LoopbackServer::start(move |stream| {
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            let record = record.clone();
            async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    record.lock().unwrap().push(SeenRequest {
                        method: req.method().clone(),
                        path: req
                            .uri()
                            .path_and_query()
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_default(),
                        version: req.version(),
                        headers: req.headers().clone(),
                    });
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            }
        });
        let port = server.port;
        Upstream {
            port,
            url: format!("http://127.0.0.1:{port}"),
            seen,
            _server: server,
        }
    }

    /// Every request seen so far, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last_request(&self) -> Option<SeenRequest> {
        self.seen.lock().unwrap().last().cloned()
    }
}

/// Sends every request at once (each on its own task) and returns the statuses in order.
pub async fn statuses_at_once(
    requests: impl IntoIterator<Item = reqwest::RequestBuilder>,
) -> Vec<StatusCode> {
    let sent = requests
        .into_iter()
        .map(|r| tokio::spawn(async move { r.send().await.unwrap().status() }));
    futures_util::future::join_all(sent)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

/// What a `ScriptedUpstream` sends for one request: these pieces, written apart (a short
/// pause between them, so they arrive in separate reads), then the connection is closed
/// when `close` says so (without a word in the headers).
pub struct Script {
    pub pieces: Vec<Vec<u8>>,
    pub close: bool,
}

/// A raw HTTP/1.1 upstream answering each request with the bytes its script gives for the
/// request line (e.g. `GET /chunked HTTP/1.1`): for framing a real server library would not
/// produce. Counts the connections it accepted.
pub struct ScriptedUpstream {
    pub url: String,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    closed: Arc<std::sync::atomic::AtomicUsize>,
    _server: LoopbackServer,
}

impl ScriptedUpstream {
    pub fn start(script: impl Fn(&str) -> Script + Send + Sync + 'static) -> ScriptedUpstream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let script = Arc::new(script);
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = connections.clone();
        let closings = closed.clone();
        let server = LoopbackServer::start(move |mut stream| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let script = script.clone();
            let closings = closings.clone();
            async move {
                // Counted when this connection's task ends, however it ends.
                struct Closed(Arc<std::sync::atomic::AtomicUsize>);
                impl Drop for Closed {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                let _closed = Closed(closings);
                let mut buf = Vec::new();
                loop {
                    let end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    let line = head.lines().next().unwrap_or_default().to_string();
                    let Script { pieces, close } = script(&line);
                    for (i, piece) in pieces.iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        if stream.write_all(piece).await.is_err() {
                            return;
                        }
                    }
                    if close {
                        return;
                    }
                }
            }
        });
        ScriptedUpstream {
            url: format!("http://127.0.0.1:{}", server.port),
            connections,
            closed,
            _server: server,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Connections that have ended (the gateway closed them, or the script did).
    pub fn closed(&self) -> usize {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The default upstream behaviour.
///
/// - any path: 200, `application/json`
///   `{"method", "path" (path + query as received), "headers": {name: value}, "body_len"}`;
///   the request body is counted as it streams, never held; repeated headers are joined
///   with ", ". The response also carries `x-upstream: echo`.
/// - `/download/<n>`: 200 with `n` bytes of `x`, streamed in 64 KiB chunks (Content-Length set).
/// - `/slow/<ms>`: waits that long, then answers as the echo does.
/// - `/status/<code>`: answers with that status and the echo body.
/// - `/mirror`: a POST's body comes back as it arrived; a GET of `/mirror/<n>` gets
///   `pattern(n)` in one piece.
pub async fn echo(req: Request<Incoming>) -> Response<UpstreamBody> {
    let path = req.uri().path().to_string();
    if let Some(n) = path.strip_prefix("/download/") {
        let n: u64 = n.parse().unwrap_or(0);
        return download(n);
    }
    if let Some(rest) = path.strip_prefix("/mirror") {
        let bytes = match rest.strip_prefix('/') {
            Some(n) => Bytes::from(pattern(n.parse().unwrap_or(0))),
            None => req.into_body().collect().await.unwrap().to_bytes(),
        };
        return Response::builder()
            .header("content-type", "application/octet-stream")
            .body(full_body(bytes))
            .expect("mirror response");
    }
    let mut status = StatusCode::OK;
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms: u64 = ms.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    } else if let Some(code) = path.strip_prefix("/status/") {
        status = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
    }

    let method = req.method().to_string();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let mut body = req.into_body();
    let mut body_len: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_len += data.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let doc = serde_json::json!({
        "method": method,
        "path": pq,
        "headers": headers,
        "body_len": body_len,
    });
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let bytes = if no_body {
        Bytes::new()
    } else {
        Bytes::from(doc.to_string())
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-upstream", "echo")
        .body(full_body(bytes))
        .expect("echo response")
}

/// `n` bytes that differ from position to position (and repeat only every 251), for bodies
/// whose every byte is checked.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A complete body for a handler's response.
pub fn full_body(bytes: impl Into<Bytes>) -> UpstreamBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// `n` bytes, produced chunk by chunk from one static buffer.
fn download(n: u64) -> Response<UpstreamBody> {
    let chunks = futures_util::stream::unfold(n, |left| async move {
        if left == 0 {
            return None;
        }
        let take = left.min(CHUNK.len() as u64);
        let frame = Frame::data(Bytes::from_static(&CHUNK[..take as usize]));
        Some((Ok::<_, std::io::Error>(frame), left - take))
    });
    Response::builder()
        .header("content-type", "application/octet-stream")
        .header("content-length", n.to_string())
        .body(BodyExt::boxed(StreamBody::new(chunks)))
        .expect("download response")
}

/// A stream of `total` bytes in 64 KiB chunks, for `reqwest::Body::wrap_stream`: large
/// uploads without holding them in memory.
pub fn generated_body(
    total: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(total, |left| async move {
        if left == 0 {
            return None;
        }
        let take = left.min(CHUNK.len() as u64);
        Some((Ok(Bytes::from_static(&CHUNK[..take as usize])), left - take))
    })
}

/// A WebSocket server (tokio-tungstenite `accept_async`) that sends every text and binary
/// message back. Runs on its own thread; stopped when dropped.
pub struct WebSocketEcho {
    pub port: u16,
    /// `http://127.0.0.1:{port}`: what a route's `upstream` says.
    pub url: String,
    _server: LoopbackServer,
}

impl WebSocketEcho {
    pub fn start() -> WebSocketEcho {
        let server = LoopbackServer::start(|stream| async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() || msg.is_binary() {
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                } else if msg.is_close() {
                    break;
                }
            }
        });
        let port = server.port;
        WebSocketEcho {
            port,
            url: format!("http://127.0.0.1:{port}"),
            _server: server,
        }
    }
}

// ---------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------

/// A self-signed P-256 certificate for `localhost` and `127.0.0.1`, valid for a day, not a CA.
pub struct SelfSigned {
    pub dir: tempfile::TempDir,
}

impl SelfSigned {
    pub fn generate() -> SelfSigned {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec"])
            .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .args(["-days", "1", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            // openssl's default `v3_ca` makes it a CA, which webpki refuses as a server's
            // own certificate (`CaUsedAsEndEntity`).
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .stdin(Stdio::null())
            .output()
            .expect("run openssl (is it installed?)");
        assert!(
            out.status.success(),
            "openssl req failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        SelfSigned { dir }
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
}

// ---------------------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------------------

/// A config whose only route, `/`, is public and goes to `upstream`; `extra` is appended
/// (more sections, or keys for `[upstream]` / `[server]` written as whole sections).
/// The gateway listens on `127.0.0.1:{port}`.
pub fn public_config(upstream: &str, extra: &str) -> String {
    public_config_with(upstream, "", extra)
}

/// `public_config` with `server` lines added to its `[server]` table.
pub fn public_config_with(upstream: &str, server: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
{server}

[[routes]]
path_prefix = "/"
upstream = "{upstream}"
public = true

[logging]
format = "json"
level = "info"

{extra}
"#
    )
}
