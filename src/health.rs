//! `ssogate health --url URL`: one plain-HTTP GET, success when the answer is 2xx.
//!
//! For a container's `HEALTHCHECK` and for exec probes in images that have no shell or curl.
//! Owns a minimal HTTP/1.1 exchange over a blocking socket; never follows redirects, never
//! speaks TLS (a probe asks the gateway on its own loopback listener).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a health check did not pass.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("{0} is not a URL the health check can ask: {1}")]
    BadUrl(String, &'static str),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} did not answer: {source}")]
    Exchange {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} sent no HTTP status line")]
    NoStatus { addr: String },
    #[error("{url} answered {status}")]
    NotHealthy { url: String, status: u16 },
}

/// Asks `url` (http only) once, within `timeout` for each of connect, write and read.
/// Returns the status when it is 2xx.
pub fn check(url: &str, timeout: Duration) -> Result<u16, HealthError> {
    let parsed = url::Url::parse(url).map_err(|_| HealthError::BadUrl(url.into(), "not a URL"))?;
    if parsed.scheme() != "http" {
        return Err(HealthError::BadUrl(url.into(), "only http:// is asked"));
    }
    let host = parsed
        .host_str()
        .ok_or(HealthError::BadUrl(url.into(), "no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr = format!("{host}:{port}");
    let mut stream = connect(host, port, timeout).map_err(|source| HealthError::Connect {
        addr: addr.clone(),
        source,
    })?;
    let target = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let status = exchange(&mut stream, &target, &addr, timeout)?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(HealthError::NotHealthy {
            url: url.into(),
            status,
        })
    }
}

fn connect(host: &str, port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    // A bracketed IPv6 literal comes out of `host_str` with its brackets.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for sock in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&sock, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn exchange(
    stream: &mut TcpStream,
    target: &str,
    addr: &str,
    timeout: Duration,
) -> Result<u16, HealthError> {
    let io = |source| HealthError::Exchange {
        addr: addr.into(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ssogate-health\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    // The status line fits in the first bytes; the rest of the answer is not needed.
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        match stream.read(&mut head[len..]).map_err(io)? {
            0 => break,
            n => len += n,
        }
    }
    status_of(&head[..len]).ok_or(HealthError::NoStatus { addr: addr.into() })
}

/// The status code of `HTTP/1.x NNN ...`.
fn status_of(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server on a free loopback port answering `answer` to the first request.
    fn answering(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer.as_bytes());
            }
        });
        format!("http://127.0.0.1:{port}/oauth2/ping")
    }

    #[test]
    fn a_2xx_answer_passes() {
        let url = answering("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nOK");
        assert_eq!(check(&url, Duration::from_secs(5)).unwrap(), 200);
    }

    #[test]
    fn a_503_answer_fails_naming_the_status() {
        let url = answering("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let err = check(&url, Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().ends_with("answered 503"), "{err}");
    }

    #[test]
    fn nothing_listening_fails_naming_the_address() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = check(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5)).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot connect to 127.0.0.1:"),
            "{err}"
        );
    }

    #[test]
    fn https_and_garbage_are_refused_with_words() {
        let err = check("https://127.0.0.1/", Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("only http://"), "{err}");
        assert!(check("not a url", Duration::from_secs(1)).is_err());
        assert_eq!(status_of(b"garbage"), None);
    }
}
