//! A real redis-server for the session-store tests, on a free loopback port, without
//! persistence, stopped by its PID. Include it with
//! `#[path = "common/redis_server.rs"] mod redis_server;` beside `mod common;`.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::free_port;

/// A real redis-server on a free loopback port, without persistence, stopped by its PID.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    /// More redis-server arguments (e.g. `--replicaof`).
    extra: Vec<String>,
    /// Its own working directory: a master with a replica writes dump.rdb there, and a
    /// redis-server loads any dump.rdb it finds at start.
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Redis {
        let mut r = Redis {
            port: free_port(),
            child: None,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            dir: tempfile::tempdir().expect("a temp dir for redis"),
        };
        r.restart();
        r
    }

    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(&self.extra)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; scripts/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `redis-cli` against it; its output, trimmed. (Blocks for a few ms.)
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        assert!(out.status.success(), "redis-cli {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops (`STOP`) or resumes (`CONT`) the process: stopped, it still accepts connections
    /// (the kernel does) and never answers, like a Redis behind a network fault.
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
