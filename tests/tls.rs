//! The HTTPS listener (`[server.tls]`) as a client meets it: HTTP/1.1 and HTTP/2 (ALPN) over
//! TLS with a certificate made at test time by the `openssl` command, the upstream told
//! `X-Forwarded-Proto: https`, plain HTTP on the TLS port refused without stopping the
//! gateway, and a missing certificate file named by its key at start.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio_rustls::client::TlsStream;

/// The `[server.tls]` section for these files.
fn tls_section(cert: &Path, key: &Path) -> String {
    format!(
        "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

/// `public_config` with `[server.tls]` inside `[server]` (a `[server.tls]` table appended
/// after other sections would be valid TOML too, but this reads as an operator writes it).
fn tls_public_config(upstream: &str, cert: &Path, key: &Path) -> String {
    public_config(upstream, "").replace(
        "listen = \"127.0.0.1:{port}\"\n",
        &format!(
            "listen = \"127.0.0.1:{{port}}\"\n\n{}",
            tls_section(cert, key)
        ),
    )
}

/// A TLS connection to the gateway offering `alpn`, trusting only `ca_file`, for the server
/// name `localhost`.
async fn connect_tls(
    port: u16,
    ca_file: &Path,
    alpn: &[&[u8]],
) -> TlsStream<tokio::net::TcpStream> {
    let mut config = (*tls_client_config(ca_file)).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the gateway");
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the gateway")
}

/// One HTTP/1.1 GET over a fresh TLS connection offering ALPN `http/1.1`; status and body.
async fn get_h1(port: u16, ca_file: &Path, path: &str) -> (u16, Value) {
    let tls = connect_tls(port, ca_file, &[b"http/1.1"]).await;
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "ALPN http/1.1 offered alone is what the server picks"
    );
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", format!("localhost:{port}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.expect("HTTP/1.1 request");
    assert_eq!(resp.version(), http::Version::HTTP_11);
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let doc = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{status} with a body that is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, doc)
}

/// A gateway serving HTTPS with a fresh certificate, public routes to an echo upstream.
fn https_gateway() -> (SelfSigned, Upstream, Gateway) {
    let certs = SelfSigned::generate();
    let upstream = Upstream::echo();
    let gw = Gateway::start_tls(
        &tls_public_config(&upstream.url, &certs.cert(), &certs.key()),
        certs.cert(),
    );
    (certs, upstream, gw)
}

#[tokio::test]
async fn https_serves_http1_and_h2_and_plain_http_on_the_tls_port_is_refused() {
    let (certs, upstream, gw) = https_gateway();
    assert!(gw.base.starts_with("https://"), "{}", gw.base);

    // HTTP/1.1 over TLS: the upstream (plain HTTP) is told the client used https.
    let (status, seen) = get_h1(gw.port, &certs.cert(), "/tls/h1?x=1").await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["path"], "/tls/h1?x=1");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https", "{seen}");
    let last = upstream
        .last_request()
        .expect("the upstream saw the request");
    assert_eq!(last.header("x-forwarded-proto"), Some("https"));
    assert_eq!(last.path, "/tls/h1?x=1");

    // ALPN h2: negotiated, and an HTTP/2 request is served.
    let tls = connect_tls(gw.port, &certs.cert(), &[b"h2", b"http/1.1"]).await;
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "the server prefers h2 when offered"
    );
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake over TLS");
    tokio::spawn(conn);
    let req = http::Request::get(format!("https://localhost:{}/tls/h2?y=2", gw.port))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.expect("HTTP/2 request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["path"], "/tls/h2?y=2");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https", "{seen}");
    let last = upstream.last_request().unwrap();
    assert_eq!(
        last.version,
        http::Version::HTTP_11,
        "HTTP/1.1 towards the upstream"
    );
    assert_eq!(last.header("x-forwarded-proto"), Some("https"));

    // Plain HTTP to the TLS port: no HTTP answer, the connection is closed promptly.
    let upstream_seen = upstream.requests().len();
    let port = gw.port;
    let (answer, took) = tokio::task::spawn_blocking(move || plain_http_exchange(port))
        .await
        .unwrap();
    match &answer {
        Ok(bytes) => assert!(
            !bytes.starts_with(b"HTTP/"),
            "plain HTTP on the TLS port got an HTTP answer: {:?}",
            String::from_utf8_lossy(bytes)
        ),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the gateway held a plain-HTTP connection open for {took:?} without closing it: {e}"
        ),
    }
    assert_eq!(
        upstream.requests().len(),
        upstream_seen,
        "nothing reached the upstream from the plain-HTTP attempt"
    );

    // ... and the gateway keeps serving TLS afterwards.
    let (status, seen) = get_h1(gw.port, &certs.cert(), "/tls/after").await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["path"], "/tls/after");
    let (status, _) = get_h1(gw.port, &certs.cert(), "/oauth2/ping").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn one_https_connection_carries_many_requests_a_large_download_and_a_body() {
    let (certs, upstream, gw) = https_gateway();
    let tls = connect_tls(gw.port, &certs.cert(), &[b"http/1.1"]).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 handshake");
    let conn = tokio::spawn(conn);
    let host = format!("localhost:{}", gw.port);

    // Plain GETs, then 3 MB streamed from the upstream, then a POST with a body (the gateway's
    // own loop hands the connection to hyper for it), then GETs again: all on one connection.
    let mut seen_paths = Vec::new();
    for (method, path, body) in [
        ("GET", "/keep/1", ""),
        ("GET", "/keep/2?q=1", ""),
        ("GET", "/download/3000000", ""),
        ("POST", "/keep/form", "a=1&b=2"),
        ("GET", "/keep/3", ""),
    ] {
        sender.ready().await.expect("the connection is still open");
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &host)
            .body(http_body_util::Full::new(Bytes::from(body)))
            .unwrap();
        let resp = sender.send_request(req).await.expect("an answer");
        assert_eq!(resp.status(), 200, "{method} {path}");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        if path.starts_with("/download/") {
            assert_eq!(bytes.len(), 3_000_000, "the whole download arrived");
        } else {
            let doc: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(doc["method"], method);
            assert_eq!(doc["path"], path);
            assert_eq!(doc["body_len"], body.len());
            assert_eq!(doc["headers"]["x-forwarded-proto"], "https", "{doc}");
        }
        seen_paths.push(upstream.last_request().unwrap().path);
    }
    assert_eq!(
        seen_paths,
        [
            "/keep/1",
            "/keep/2?q=1",
            "/download/3000000",
            "/keep/form",
            "/keep/3"
        ]
    );
    drop(sender);
    conn.await.unwrap().expect("the connection ended cleanly");
}

/// Sends a plain HTTP/1.1 request to `port` and reads until the peer closes (5 s at most):
/// what came back (perhaps a TLS alert), or the error, and how long it took.
fn plain_http_exchange(port: u16) -> (std::io::Result<Vec<u8>>, Duration) {
    let started = Instant::now();
    let result = (|| {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = StdTcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    })();
    (result, started.elapsed())
}

#[test]
fn a_missing_cert_file_stops_serve_with_a_non_zero_exit_naming_the_key() {
    let certs = SelfSigned::generate();
    let missing = certs.dir.path().join("no-such-cert.pem");
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("ssogate.toml");
    let config = tls_public_config("http://127.0.0.1:9", &missing, &certs.key())
        .replace("{port}", &free_port().to_string());
    std::fs::write(&config_path, config).unwrap();

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
    let mut child = cmd.spawn().expect("spawn ssogate serve");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for ssogate") {
            break status;
        }
        if Instant::now() > deadline {
            // Kills this child only, by its PID.
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ssogate serve with a missing cert_file still runs after 15 s; stderr:\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap();
    assert!(
        !status.success(),
        "exit {status} with a missing cert_file; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("server.tls.cert_file"),
        "stderr does not name server.tls.cert_file:\n{stderr}"
    );
    assert!(
        stderr.contains("no-such-cert.pem"),
        "stderr does not name the missing file:\n{stderr}"
    );
}

/// A gateway serving HTTPS from certificate files that a test renews in place, as
/// cert-manager or certbot do: `old` is served at first, `new` is the renewal.
struct Renewable {
    old: SelfSigned,
    new: SelfSigned,
    cert: PathBuf,
    key: PathBuf,
    gw: Gateway,
    _served: tempfile::TempDir,
    _upstream: Upstream,
}

impl Renewable {
    fn start(secret_poll_interval: &str) -> Renewable {
        let (old, new) = (SelfSigned::generate(), SelfSigned::generate());
        let served = tempfile::tempdir().unwrap();
        let (cert, key) = (served.path().join("tls.crt"), served.path().join("tls.key"));
        std::fs::copy(old.cert(), &cert).unwrap();
        std::fs::copy(old.key(), &key).unwrap();
        let upstream = Upstream::echo();
        let config = tls_public_config(&upstream.url, &cert, &key).replace(
            "listen = \"127.0.0.1:{port}\"\n",
            &format!(
                "listen = \"127.0.0.1:{{port}}\"\nsecret_poll_interval = \"{secret_poll_interval}\"\n"
            ),
        );
        let gw = Gateway::start_tls(&config, old.cert());
        Renewable {
            old,
            new,
            cert,
            key,
            gw,
            _served: served,
            _upstream: upstream,
        }
    }

    /// Writes the renewed pair over the served files, key first.
    fn renew(&self) {
        std::fs::copy(self.new.key(), &self.key).unwrap();
        std::fs::copy(self.new.cert(), &self.cert).unwrap();
    }

    /// Waits until a new connection gets the renewed certificate; panics after `within`.
    async fn wait_for_the_new_one(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while handshake(self.gw.port, &self.new.cert()).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the renewed certificate is not served\n{}",
                self.gw.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether a TLS handshake with the gateway succeeds when only `ca_file` is trusted.
async fn handshake(port: u16, ca_file: &Path) -> std::io::Result<()> {
    let connector = tokio_rustls::TlsConnector::from(tls_client_config(ca_file));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let r = Renewable::start("1s");
    handshake(r.gw.port, &r.old.cert())
        .await
        .expect("the first certificate");
    assert!(handshake(r.gw.port, &r.new.cert()).await.is_err());

    // A half-written or broken file: the current certificate stays, and the log says why.
    std::fs::write(&r.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    r.gw.wait_for_log(Duration::from_secs(10), |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot load the TLS certificate files again"))
    });
    handshake(r.gw.port, &r.old.cert())
        .await
        .expect("still the first certificate");

    // The renewed pair: new connections get it within a poll interval or two.
    r.renew();
    r.wait_for_the_new_one(Duration::from_secs(10)).await;
    assert!(handshake(r.gw.port, &r.old.cert()).await.is_err());
    let (status, seen) = get_h1(r.gw.port, &r.new.cert(), "/after-renewal").await;
    assert_eq!(status, 200, "{seen}");
}

#[tokio::test]
async fn sighup_reads_a_renewed_certificate_at_once() {
    // No polling: only the signal makes the gateway look at the files again.
    let r = Renewable::start("0s");
    r.renew();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    handshake(r.gw.port, &r.old.cert())
        .await
        .expect("not read again without the signal");

    r.gw.signal("HUP");
    r.wait_for_the_new_one(Duration::from_secs(5)).await;
    // Logging is asynchronous: the line may come after the certificate is in use.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !r.gw.logs().contains("SIGHUP") {
        assert!(std::time::Instant::now() < deadline, "{}", r.gw.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
