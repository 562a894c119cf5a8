//! A real Cognito API emulator for the admin tests: `moto` in server mode (PyPI
//! `moto[server]`, installed by scripts/test) on a free loopback port, stopped by its PID; and
//! a pool seeded through Cognito's own JSON API.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::free_port;

/// The region every test pool lives in (moto reads it from the request's credential scope).
pub const REGION: &str = "eu-west-1";

pub struct Moto {
    pub port: u16,
    child: Child,
    /// moto's stderr (its request log and any traceback), shown when a call to it fails.
    log: tempfile::NamedTempFile,
}

impl Moto {
    pub fn start() -> Moto {
        Self::start_with_env(&[])
    }

    /// With moto's own settings, like `INITIAL_NO_AUTH_ACTION_COUNT` (IAM enforcement).
    /// Ready means moto itself answered HTTP and is still running: a port that merely accepts
    /// a connection could be another process's, and a moto that could not bind its port has
    /// exited (then it starts again on another port).
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().expect("a temp file for moto's log");
            let stderr = log.reopen().expect("moto's log file");
            let child = Command::new("python3")
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::from(stderr))
                .spawn()
                .expect("python3 -m moto.server (scripts/test installs moto[server])");
            let mut moto = Moto { port, child, log };
            loop {
                assert!(Instant::now() < deadline, "moto did not answer within 60 s");
                if moto.child.try_wait().ok().flatten().is_some() {
                    break; // exited: another port
                }
                if answers_http(port) && moto.child.try_wait().ok().flatten().is_none() {
                    return moto;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Whether moto's process still runs, and the end of its log: what a failed call needs
    /// to be understood.
    fn state(&self) -> String {
        // An exited child that nobody has waited for yet is a zombie: state `Z`.
        let running = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|stat| {
                stat.rsplit(')')
                    .next()
                    .map(|rest| !rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false);
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "moto (pid {}, port {}) {}; the end of its log:\n{}",
            self.child.id(),
            self.port,
            if running { "is running" } else { "has exited" },
            tail.join("\n")
        )
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One Cognito call (`target` like "CreateUserPool") through the JSON protocol.
    pub async fn call(&self, target: &str, body: Value) -> Value {
        let (status, v) = self.try_call(target, body).await;
        assert!(status.is_success(), "{target}: {status} {v}");
        v
    }

    pub async fn try_call(&self, target: &str, body: Value) -> (reqwest::StatusCode, Value) {
        let resp = crate::common::client()
            .post(self.url())
            .header(
                "x-amz-target",
                format!("AWSCognitoIdentityProviderService.{target}"),
            )
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/cognito-idp/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto answers {target}: {e}\n{}", self.state()));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// One IAM call (query protocol), answered as XML text.
    pub async fn iam(&self, params: &[(&str, &str)]) -> String {
        let mut form: Vec<(&str, &str)> = vec![("Version", "2010-05-08")];
        form.extend_from_slice(params);
        let resp = crate::common::client()
            .post(self.url())
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            )
            .form(&form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto answers IAM {params:?}: {e}\n{}", self.state()));
        assert!(
            resp.status().is_success(),
            "IAM {params:?}: {}",
            resp.status()
        );
        resp.text().await.unwrap_or_default()
    }

    /// A pool with groups `admins` and `staff`, and the given users (username, email,
    /// groups), each with a permanent password `Passw0rd!`. Returns the pool id.
    pub async fn seed_pool(&self, users: &[(&str, &str, &[&str])]) -> String {
        let pool = self
            .call(
                "CreateUserPool",
                json!({ "PoolName": "test", "Policies": { "PasswordPolicy": {
                    "MinimumLength": 10, "RequireUppercase": true, "RequireLowercase": true,
                    "RequireNumbers": true, "RequireSymbols": false } } }),
            )
            .await;
        let pool_id = pool["UserPool"]["Id"]
            .as_str()
            .expect("pool id")
            .to_string();
        for group in ["admins", "staff"] {
            self.call(
                "CreateGroup",
                json!({ "UserPoolId": pool_id, "GroupName": group }),
            )
            .await;
        }
        for (name, email, groups) in users {
            self.call(
                "AdminCreateUser",
                json!({ "UserPoolId": pool_id, "Username": name, "MessageAction": "SUPPRESS",
                        "UserAttributes": [{ "Name": "email", "Value": email }] }),
            )
            .await;
            self.call(
                "AdminSetUserPassword",
                json!({ "UserPoolId": pool_id, "Username": name, "Password": "Passw0rd!xy",
                        "Permanent": true }),
            )
            .await;
            for g in *groups {
                self.call(
                    "AdminAddUserToGroup",
                    json!({ "UserPoolId": pool_id, "Username": name, "GroupName": g }),
                )
                .await;
            }
        }
        pool_id
    }

    /// The user as Cognito has them (`AdminGetUser`), or `None` when not found.
    pub async fn user(&self, pool_id: &str, username: &str) -> Option<Value> {
        let (status, v) = self
            .try_call(
                "AdminGetUser",
                json!({ "UserPoolId": pool_id, "Username": username }),
            )
            .await;
        status.is_success().then_some(v)
    }

    pub async fn groups_of(&self, pool_id: &str, username: &str) -> Vec<String> {
        let v = self
            .call(
                "AdminListGroupsForUser",
                json!({ "UserPoolId": pool_id, "Username": username }),
            )
            .await;
        v["Groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["GroupName"].as_str().map(str::to_string))
            .collect()
    }
}

/// Whether something on `port` answers an HTTP request for moto's own API with 200.
fn answers_http(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let asked = conn.write_all(b"GET /moto-api/data.json HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut head = [0u8; 12];
    asked.is_ok() && conn.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Environment for an `ssogate` process talking to moto: fixed test credentials and nothing
/// from the machine's AWS profile or instance metadata.
pub fn aws_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}
