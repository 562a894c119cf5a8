//! `ssogate demo`: the gateway in front of an echo app, signing in through a built-in
//! Cognito-shaped test provider, all on loopback. The gateway runs its production code with
//! a generated config; only the provider and the app are stand-ins. Never used by
//! production paths.

mod echo;
mod keys;
mod provider;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use url::Url;

use crate::config::{Config, ConfigErrors, ProcessSource};
use crate::server::ServerError;

pub use echo::EchoApp;
pub use keys::RsaSigner;
pub use provider::{find_user, AppClient, DemoProvider, DemoUser, DEMO_PASSWORD, DEMO_USERS};

/// The demo's user pool: a valid Cognito pool id, so the config takes the `cognito` path.
pub const DEMO_POOL_ID: &str = "eu-central-1_Demo1234";
pub const DEMO_CLIENT_ID: &str = "ssogate-demo";

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the gateway listens: a loopback address only (the demo users' password is public).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4180")]
    pub listen: SocketAddr,
    /// Port of the built-in identity provider on 127.0.0.1 (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub idp_port: u16,
    /// Port of the echo app on 127.0.0.1 (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub echo_port: u16,
    /// Put this app behind the gateway instead of the echo page (both routes go to it).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<Url>,
    /// A TOML file laid over the generated config: its tables merge key by key, its
    /// arrays (like [[routes]]) replace the generated ones.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Only members of GROUP may pass on "/" (repeat for any-of), e.g. `--require-group staff`.
    #[arg(long = "require-group", value_name = "GROUP")]
    pub require_groups: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The demo's password is printed for everyone: serving it beyond this machine would
    /// let anybody who can reach the port in.
    #[error(
        "--listen {0} is not a loopback address: the demo's users and password are public, so it only \
         listens on this machine (127.0.0.1 or [::1]); to serve others, run `ssogate serve` with a real provider"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr} for the {what} (choose another port with {flag})")]
    Bind {
        what: &'static str,
        flag: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read --config {path}")]
    ReadOverlay {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--config {path} is not valid TOML: {reason}")]
    ParseOverlay { path: PathBuf, reason: String },
    /// The listener is bound from `--listen` before the config is read.
    #[error("--config {0} sets server.listen: give the address with --listen instead")]
    ListenInOverlay(PathBuf),
    #[error("the demo's configuration (generated, with the --config overlay) is not valid: {0}")]
    Config(ConfigErrors),
    #[error("the demo config has no [provider] section with a client_id: keep the generated one or set it in --config")]
    NoProvider,
    #[error("cannot make the demo provider's signing key: {0}")]
    Key(String),
    #[error(transparent)]
    Gateway(#[from] ServerError),
    #[error("the gateway stopped unexpectedly: {0}")]
    GatewayTask(String),
}

/// The three listeners, bound before anything else so `0` ports are known.
struct Listeners {
    gateway: TcpListener,
    provider: TcpListener,
    /// Absent with `--upstream`.
    echo: Option<TcpListener>,
}

/// What the generated config needs to know.
struct DemoSetup {
    public_url: String,
    issuer: String,
    upstream: String,
    client_secret: String,
    session_secret: String,
}

pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    if !args.listen.ip().is_loopback() {
        return Err(DemoError::NotLoopback(args.listen));
    }
    let listeners = bind(&args).await?;
    let setup = DemoSetup::new(&listeners, &args)?;
    let config = demo_config(&setup, &args)?;
    let _log_guard = crate::telemetry::init(&config.logging);

    let app_client = app_client(&config, &setup)?;
    let signer = tokio::task::spawn_blocking(RsaSigner::generate)
        .await
        .map_err(|e| DemoError::Key(e.to_string()))?
        .map_err(DemoError::Key)?;
    let provider = DemoProvider::new(&setup.issuer, app_client, signer).map_err(DemoError::Key)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut helpers = Vec::new();
    helpers.push(tokio::spawn(serve_http(
        listeners.provider,
        move |req| {
            let provider = provider.clone();
            async move { provider.handle(req).await }
        },
        stop_rx.clone(),
    )));
    if let Some(listener) = listeners.echo {
        let echo = EchoApp::new(&config.server.auth_prefix);
        helpers.push(tokio::spawn(serve_http(
            listener,
            move |req| {
                let resp = echo.handle(&req);
                async move { resp }
            },
            stop_rx.clone(),
        )));
    }

    tracing::info!(issuer = %setup.issuer, "demo identity provider is up");
    let banner = banner(&config, &setup, &args);
    let ready_url = format!("{}{}/ready", setup.public_url, config.server.auth_prefix);
    let mut gateway = tokio::spawn(crate::server::serve(
        listeners.gateway,
        config,
        shutdown_signal(),
    ));
    // The banner invites a click: print it once the gateway can sign people in (it fetches
    // the provider's metadata and keys first), or when that takes unexpectedly long.
    let early_end = tokio::select! {
        ended = &mut gateway => Some(ended),
        ready = wait_until_ready(&ready_url, Duration::from_secs(10)) => {
            if !ready {
                tracing::warn!(url = %ready_url, "the gateway is not ready yet; sign-in may answer 503 for a moment");
            }
            None
        }
    };
    if early_end.is_none() {
        println!("{banner}");
    }
    let served = match early_end {
        Some(ended) => ended,
        None => gateway.await,
    };
    // The gateway has drained (refreshes and sign-outs may need the provider until then).
    let _ = stop_tx.send(true);
    for h in helpers {
        let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
    }
    Ok(served.map_err(|e| DemoError::GatewayTask(e.to_string()))??)
}

/// Polls the gateway's readiness endpoint until it answers 200 or `limit` passes.
async fn wait_until_ready(url: &str, limit: Duration) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let poll = async {
        loop {
            let answer =
                tokio::time::timeout(Duration::from_secs(2), client.get(uri.clone())).await;
            if matches!(answer, Ok(Ok(resp)) if resp.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    tokio::time::timeout(limit, poll).await.is_ok()
}

async fn bind(args: &DemoArgs) -> Result<Listeners, DemoError> {
    let bind = |what, flag, addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| DemoError::Bind {
                what,
                flag,
                addr,
                source,
            })
    };
    let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let gateway = bind("gateway", "--listen", args.listen).await?;
    let provider = bind("identity provider", "--idp-port", loopback(args.idp_port)).await?;
    let echo = match args.upstream {
        Some(_) => None,
        None => Some(bind("echo app", "--echo-port", loopback(args.echo_port)).await?),
    };
    Ok(Listeners {
        gateway,
        provider,
        echo,
    })
}

impl DemoSetup {
    fn new(listeners: &Listeners, args: &DemoArgs) -> Result<DemoSetup, DemoError> {
        let local = |l: &TcpListener, what, flag| {
            l.local_addr().map_err(|source| DemoError::Bind {
                what,
                flag,
                addr: args.listen,
                source,
            })
        };
        // `public_url` follows the address actually bound (port 0 included).
        let gateway = local(&listeners.gateway, "gateway", "--listen")?;
        let provider = local(&listeners.provider, "identity provider", "--idp-port")?;
        let upstream = match (&args.upstream, &listeners.echo) {
            (Some(url), _) => url.as_str().trim_end_matches('/').to_string(),
            (None, Some(echo)) => format!("http://{}", local(echo, "echo app", "--echo-port")?),
            (None, None) => {
                unreachable!("bind() makes the echo listener when there is no --upstream")
            }
        };
        Ok(DemoSetup {
            public_url: format!("http://{gateway}"),
            issuer: format!("http://{provider}/{DEMO_POOL_ID}"),
            upstream,
            client_secret: random_token(32),
            session_secret: base64::engine::general_purpose::STANDARD.encode(random_bytes(32)),
        })
    }
}

/// The generated config as TOML text: a `cognito` provider pointed at the built-in one.
fn generated_toml(setup: &DemoSetup) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        r#"[server]
listen = {listen}
public_url = {public_url}

[provider]
kind = "cognito"
user_pool_id = {pool}
issuer_url = {issuer}
domain = {issuer}
client_id = {client_id}
client_secret = {client_secret}
client_auth = "client_secret_basic"

[session]
secret = {session_secret}

[access]
allowed_groups = []

[[routes]]
path_prefix = "/"
upstream = {upstream}

[[routes]]
path_prefix = "/admin/"
upstream = {upstream}
allowed_groups = ["admins"]

[logging]
format = "pretty"
level = "info"
"#,
        listen = q(setup.public_url.trim_start_matches("http://")),
        public_url = q(&setup.public_url),
        pool = q(DEMO_POOL_ID),
        issuer = q(&setup.issuer),
        client_id = q(DEMO_CLIENT_ID),
        client_secret = q(&setup.client_secret),
        session_secret = q(&setup.session_secret),
        upstream = q(&setup.upstream),
    )
}

/// Generated config, then the `--config` overlay, then `--require-group`; validated by the
/// gateway's own config code (so `SSOGATE_*` environment overrides apply as in `serve`).
fn demo_config(setup: &DemoSetup, args: &DemoArgs) -> Result<Config, DemoError> {
    let text = merged_toml(setup, args)?;
    Config::from_toml_str(&text, &ProcessSource).map_err(DemoError::Config)
}

fn merged_toml(setup: &DemoSetup, args: &DemoArgs) -> Result<String, DemoError> {
    // The generated text is made by us from quoted values: it always parses.
    let mut table: toml::Table = generated_toml(setup)
        .parse()
        .expect("the generated demo config is valid TOML");
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).map_err(|source| DemoError::ReadOverlay {
            path: path.clone(),
            source,
        })?;
        let top: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| DemoError::ParseOverlay {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
        let sets_listen = top
            .get("server")
            .and_then(|s| s.as_table())
            .is_some_and(|s| s.contains_key("listen"));
        if sets_listen {
            return Err(DemoError::ListenInOverlay(path.clone()));
        }
        overlay(&mut table, top);
    }
    if !args.require_groups.is_empty() {
        let groups = args
            .require_groups
            .iter()
            .map(|g| toml::Value::String(g.clone()))
            .collect();
        let mut access = toml::Table::new();
        access.insert("allowed_groups".into(), toml::Value::Array(groups));
        let mut top = toml::Table::new();
        top.insert("access".into(), toml::Value::Table(access));
        overlay(&mut table, top);
    }
    Ok(toml::to_string(&table).unwrap_or_default())
}

/// Lays `top` over `base`: tables merge key by key, anything else (arrays included) replaces.
fn overlay(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => overlay(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The app client the provider registers: whatever the final config says, so an overlay of
/// `client_id`, `client_secret`, `public_url` or `callback_path` keeps both sides agreeing.
fn app_client(config: &Config, setup: &DemoSetup) -> Result<AppClient, DemoError> {
    let provider = config.provider().ok_or(DemoError::NoProvider)?;
    let origin = config
        .server
        .public_url
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .unwrap_or_else(|| setup.public_url.clone());
    Ok(AppClient {
        client_id: provider.client_id.clone(),
        client_secret: provider
            .client_secret
            .as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| setup.client_secret.clone()),
        redirect_uri: format!("{origin}{}", config.server.callback_path),
        sign_out_prefix: format!("{origin}/"),
    })
}

/// What `ssogate demo` prints at start: where to go, who to be, and the production config.
fn banner(config: &Config, setup: &DemoSetup, args: &DemoArgs) -> String {
    let mut out = String::new();
    let public = config
        .server
        .public_url
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .unwrap_or_else(|| setup.public_url.clone());
    out.push_str("ssogate demo: the gateway, a built-in Cognito-like identity provider and ");
    out.push_str(if args.upstream.is_some() {
        "your app"
    } else {
        "an echo app"
    });
    out.push_str(", on this machine only.\n\n");
    out.push_str(&format!("  Open {public}/ in a browser and sign in.\n\n"));
    out.push_str(&format!(
        "  Demo users (the password of each is {DEMO_PASSWORD}):\n"
    ));
    for u in &DEMO_USERS {
        let groups = if u.groups.is_empty() {
            "no group".to_string()
        } else {
            format!("groups: {}", u.groups.join(", "))
        };
        out.push_str(&format!(
            "    {:<7} {:<19} {}\n",
            u.username, u.email, groups
        ));
    }
    out.push_str("\n  Who may pass:\n");
    for r in &config.routes {
        let rule = if r.public {
            "anyone (public)".to_string()
        } else {
            match r
                .allowed_groups
                .as_ref()
                .unwrap_or(&config.access.allowed_groups)
            {
                g if g.is_empty() => "any signed-in user".to_string(),
                g => format!("members of {}", g.join(" or ")),
            }
        };
        out.push_str(&format!(
            "    {:<9} {} -> {}\n",
            r.path_prefix, rule, r.upstream
        ));
    }
    out.push_str(&format!(
        "\n  Identity provider (issuer): {}\n",
        setup.issuer
    ));
    if args.upstream.is_none() {
        out.push_str(&format!(
            "  Echo app (shows the identity headers the app receives): {}\n",
            setup.upstream
        ));
    }
    out.push_str(
        "\nWith a real Amazon Cognito user pool, the same setup is this ssogate.toml\n\
         (replace the placeholders; run it with `ssogate serve --config ssogate.toml`):\n\n",
    );
    out.push_str(&production_toml(config, args));
    out.push_str("\nStop the demo with Ctrl-C.\n");
    out
}

/// The `ssogate.toml` a user would write for a real pool, mirroring the demo's rules.
fn production_toml(config: &Config, args: &DemoArgs) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let list = |g: &[String]| {
        let items: Vec<String> = g.iter().map(|s| q(s)).collect();
        format!("[{}]", items.join(", "))
    };
    let prefix = &config.server.auth_prefix;
    let callback = &config.server.callback_path;
    let mut out = format!(
        r#"[server]
listen = "0.0.0.0:4180"
public_url = "https://app.example.com"     # HTTPS (Cognito allows http:// only for localhost)

[provider]
kind = "cognito"
user_pool_id = "eu-central-1_YourPoolId"   # Cognito console > User pools > your pool
domain = "https://<your-domain>.auth.eu-central-1.amazoncognito.com"   # App integration > Domain
client_id = "<your app client id>"
client_secret_file = "/run/secrets/cognito-client-secret"
client_auth = "client_secret_basic"
# In the app client: allowed callback URL  https://app.example.com{callback}
#                    allowed sign-out URL  https://app.example.com{prefix}/signed_out
#                    OAuth grant "Authorization code", scopes openid email profile

[session]
secret_file = "/run/secrets/ssogate-cookie-secret"   # openssl rand -base64 32

[access]
allowed_groups = {groups}
"#,
        groups = list(&config.access.allowed_groups),
    );
    let upstream = match &args.upstream {
        Some(u) => q(u.as_str().trim_end_matches('/')),
        None => "\"http://127.0.0.1:8080\"   # your app".to_string(),
    };
    for r in &config.routes {
        out.push_str("\n[[routes]]\n");
        if let Some(host) = &r.host {
            out.push_str(&format!("host = {}\n", q(host)));
        }
        out.push_str(&format!("path_prefix = {}\n", q(&r.path_prefix)));
        out.push_str(&format!("upstream = {upstream}\n"));
        if r.public {
            out.push_str("public = true\n");
        }
        if let Some(g) = &r.allowed_groups {
            out.push_str(&format!("allowed_groups = {}\n", list(g)));
        }
    }
    out
}

/// Serves plain HTTP/1 on `listener` until `stop` turns true, then lets open requests finish.
async fn serve_http<S, F>(listener: TcpListener, service: S, mut stop: watch::Receiver<bool>)
where
    S: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "demo: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let svc = service_fn(move |req| {
            let fut = service(req);
            async move { Ok::<_, std::convert::Infallible>(fut.await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: stop as well.
    let _ = stop.wait_for(|stopped| *stopped).await.map(|_| ());
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    // The system RNG does not fail on the platforms we build for; if it did, nothing
    // secure could be made anyway.
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the system random number generator failed");
    buf
}

/// `n` random bytes, base64url.
fn random_token(n: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(n))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
