//! Logs (tracing-subscriber, json or pretty, through a non-blocking writer) and Prometheus
//! metrics (plain atomic counters: no lock on the request path).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Sets up logging for the process. Keep the guard alive: dropping it flushes the writer.
pub fn init(config: &LoggingConfig) -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .finish(std::io::stderr());
    // RUST_LOG wins for debugging; otherwise the configured level.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: in a file, a pipe or a container's log
    // they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false);
    let result = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging was already set up: {e}");
    }
    guard
}

/// An error and its sources on one line (`connect error: Connection refused (os error 111)`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The most of one request-supplied value a log line shows, in bytes.
pub const LOG_VALUE_MAX: usize = 256;

/// A value that came with a request (a token's `kid`, a callback's `error`, a path, a host, a
/// redirect target, a claim of a token not yet verified), as a log line shows it: at most
/// `LOG_VALUE_MAX` bytes, then how much was left out (`…(+N bytes)`), with control
/// characters escaped. A client decides what it sends, so it must not decide how long our log
/// lines are, nor start a line of its own.
#[derive(Clone, Copy)]
pub struct Clip<'a>(pub &'a str);

impl Clip<'_> {
    /// The part shown and how many bytes were left out.
    fn parts(&self) -> (&str, usize) {
        let s = self.0;
        if s.len() <= LOG_VALUE_MAX {
            return (s, 0);
        }
        let mut end = LOG_VALUE_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        (&s[..end], s.len() - end)
    }
}

impl std::fmt::Display for Clip<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        let (shown, left_out) = self.parts();
        // The access log writes every request's path through here: one write when clean.
        if !shown.chars().any(char::is_control) {
            f.write_str(shown)?;
        } else {
            for c in shown.chars() {
                if c.is_control() {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    f.write_char(c)?;
                }
            }
        }
        if left_out > 0 {
            write!(f, "…(+{left_out} bytes)")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Clip<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (shown, left_out) = self.parts();
        write!(f, "{shown:?}")?;
        if left_out > 0 {
            write!(f, "…(+{left_out} bytes)")?;
        }
        Ok(())
    }
}

/// Counters exported at `/metrics` on the metrics listener.
#[derive(Debug, Default)]
pub struct Metrics {
    pub requests_2xx: Counter,
    pub requests_3xx: Counter,
    pub requests_4xx: Counter,
    pub requests_5xx: Counter,
    pub upstream_errors: Counter,
    pub sign_ins: Counter,
    pub sign_in_failures: Counter,
    pub refreshes: Counter,
    pub refresh_failures: Counter,
    pub session_cache_hits: Counter,
    pub session_cache_misses: Counter,
    pub unreadable_cookies: Counter,
    /// Accepts that waited because `server.max_connections` were open.
    pub connections_waited: Counter,
    /// Requests refused with 413 (a route's `max_body`).
    pub bodies_too_large: Counter,
    /// Config reloads that were applied (`ssogate_config_reloads_total{result="applied"}`).
    pub config_reloads_applied: Counter,
    /// Config reloads refused: invalid, or changing what takes a restart.
    pub config_reloads_refused: Counter,
    /// Set by `ssogate serve`, which runs workers.
    pub open_connections: OnceLock<Arc<OpenConnections>>,
    /// Idle client connections parked without a task, all workers together.
    pub parked_connections: AtomicUsize,
}

/// A counter that each thread adds to on a cache line of its own (threads take the lines in
/// turn), summed when read. Requests on different cores then never write the same line:
/// two counts per request would otherwise move a line between cores each time.
#[derive(Debug, Default)]
pub struct Counter([Padded<AtomicU64>; SHARDS]);

const SHARDS: usize = 8;

/// A value on a cache line of its own (two lines: the adjacent-line prefetcher pairs them),
/// so threads writing neighbouring values do not contend.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

impl Counter {
    pub fn add(&self, n: u64) {
        let shard = SHARD.with(|s| *s);
        self.0[shard].0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// Open client connections, per worker. Written when a connection opens or closes, read by
/// the workers' balance and by `/metrics`.
#[derive(Debug)]
pub struct OpenConnections(Box<[Padded<AtomicUsize>]>);

impl OpenConnections {
    pub fn new(workers: usize) -> Self {
        OpenConnections((0..workers).map(|_| Padded::default()).collect())
    }

    pub fn workers(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, worker: usize) -> usize {
        self.0[worker].0.load(Ordering::Relaxed)
    }

    pub fn opened(&self, worker: usize) {
        self.0[worker].0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self, worker: usize) {
        self.0[worker].0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn count_status(&self, status: u16) {
        let c = match status {
            200..=299 => &self.requests_2xx,
            300..=399 => &self.requests_3xx,
            400..=499 => &self.requests_4xx,
            _ => &self.requests_5xx,
        };
        c.add(1);
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let get = |c: &Counter| c.get();
        out.push_str("# HELP ssogate_requests_total Requests answered, by status class.\n# TYPE ssogate_requests_total counter\n");
        for (class, c) in [
            ("2xx", &self.requests_2xx),
            ("3xx", &self.requests_3xx),
            ("4xx", &self.requests_4xx),
            ("5xx", &self.requests_5xx),
        ] {
            let _ = writeln!(
                out,
                "ssogate_requests_total{{class=\"{class}\"}} {}",
                get(c)
            );
        }
        for (name, help, c) in [
            (
                "ssogate_upstream_errors_total",
                "Upstream connection failures and timeouts.",
                &self.upstream_errors,
            ),
            (
                "ssogate_sign_ins_total",
                "Completed sign-ins.",
                &self.sign_ins,
            ),
            (
                "ssogate_sign_in_failures_total",
                "Rejected callbacks.",
                &self.sign_in_failures,
            ),
            (
                "ssogate_refreshes_total",
                "Token refreshes.",
                &self.refreshes,
            ),
            (
                "ssogate_refresh_failures_total",
                "Failed token refreshes.",
                &self.refresh_failures,
            ),
            (
                "ssogate_session_cookies_unreadable_total",
                "Session cookies that opened with neither the session secret nor the previous one.",
                &self.unreadable_cookies,
            ),
            (
                "ssogate_session_cache_hits_total",
                "Sessions answered from the decoded-session cache.",
                &self.session_cache_hits,
            ),
            (
                "ssogate_session_cache_misses_total",
                "Sessions decoded or fetched.",
                &self.session_cache_misses,
            ),
            (
                "ssogate_connections_waited_total",
                "New connections that waited to be accepted because server.max_connections were open.",
                &self.connections_waited,
            ),
            (
                "ssogate_request_bodies_too_large_total",
                "Requests refused with 413 because their body was over the route's max_body.",
                &self.bodies_too_large,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                get(c)
            );
        }
        out.push_str("# HELP ssogate_config_reloads_total Config reloads (SIGHUP or a changed file), by result: refused when invalid or when a change takes a restart.\n# TYPE ssogate_config_reloads_total counter\n");
        for (result, c) in [
            ("applied", &self.config_reloads_applied),
            ("refused", &self.config_reloads_refused),
        ] {
            let _ = writeln!(
                out,
                "ssogate_config_reloads_total{{result=\"{result}\"}} {}",
                get(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP ssogate_parked_connections Idle client connections waiting without a task (of the open ones).\n# TYPE ssogate_parked_connections gauge\nssogate_parked_connections {}",
            self.parked_connections.load(Ordering::Relaxed)
        );
        if let Some(open) = self.open_connections.get() {
            out.push_str("# HELP ssogate_open_connections Open client connections, by worker.\n# TYPE ssogate_open_connections gauge\n");
            for w in 0..open.workers() {
                let _ = writeln!(
                    out,
                    "ssogate_open_connections{{worker=\"{w}\"}} {}",
                    open.get(w)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_values_in_log_lines_are_cut_and_say_how_much_was_left_out() {
        let short = "kid-1";
        assert_eq!(Clip(short).to_string(), "kid-1");
        let long = "é".repeat(20_000); // 40 000 bytes, two per char
        let shown = Clip(&long).to_string();
        assert!(shown.len() < LOG_VALUE_MAX + 32, "{} bytes", shown.len());
        assert!(shown.ends_with("…(+39744 bytes)"), "{shown}");
        assert_eq!(Clip("a\nb").to_string(), "a\\nb", "no line of its own");
        assert_eq!(format!("{:?}", Clip("a\"b")), "\"a\\\"b\"");
    }

    #[test]
    fn counts_from_many_threads_add_up_in_the_metrics_text() {
        let m = Metrics::default();
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        m.count_status(200);
                    }
                    m.count_status(503);
                });
            }
        });
        let text = m.render();
        assert!(
            text.contains("ssogate_requests_total{class=\"2xx\"} 12000\n"),
            "{text}"
        );
        assert!(
            text.contains("ssogate_requests_total{class=\"5xx\"} 12\n"),
            "{text}"
        );
    }
}
