//! The `ssogate` command: `serve`, `check-config`, `explain`, `demo`, `health`, and (feature
//! `cognito-admin`) `users` / `groups`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ssogate::config::{Config, ProcessSource};

/// mimalloc, not glibc's malloc: the memory of a burst of connections goes back to the system
/// once they are idle (bench/README.md, session 19).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ssogate",
    version,
    about = "Single sign-on gateway for Amazon Cognito and OpenID Connect"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The TOML config file.
        #[arg(long, short, env = "SSOGATE_CONFIG")]
        config: PathBuf,
    },
    /// Load and validate the config, print it with secrets masked (exit 2 when invalid).
    CheckConfig {
        #[arg(long, short, env = "SSOGATE_CONFIG")]
        config: PathBuf,
        /// Also check live what it points at: the provider's metadata and keys, the client's
        /// id and secret, Redis, each upstream; one line each (exit 1 when one fails).
        #[arg(long)]
        probe: bool,
    },
    /// What the gateway would do with one request from one person: the route, the rule, the
    /// decision and why, and the identity headers the app would receive. Exit 0 when the
    /// request would be forwarded, 1 when not, 2 when the config or the question is wrong.
    Explain {
        #[arg(long, short, env = "SSOGATE_CONFIG")]
        config: PathBuf,
        /// The signed-in user (`user_claim`); leave out for a request without a session.
        #[arg(long)]
        user: Option<String>,
        /// The user's groups, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// The user's email, taken as verified by the provider.
        #[arg(long)]
        email: Option<String>,
        /// The provider the session came from (one provider today: "default").
        #[arg(long)]
        provider: Option<String>,
        /// GET, POST...
        method: String,
        /// The whole URL the browser asks for, like https://app.example.com/admin/
        url: String,
    },
    /// The whole sign-in flow on this machine: gateway, a Cognito-like test provider and an
    /// echo app, all on loopback.
    Demo(ssogate::demo::DemoArgs),
    /// Ask a URL once (plain http) and exit 0 when it answers 2xx: a HEALTHCHECK or exec probe
    /// for an image with no shell or curl.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:4180/oauth2/ping")]
        url: String,
        /// How long each of connect, send and read may take.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Manage the Cognito pool's users (list, show, create, delete, disable, groups...).
    #[cfg(feature = "cognito-admin")]
    Users(ssogate::admin::cli::UsersArgs),
    /// The Cognito pool's groups and their members.
    #[cfg(feature = "cognito-admin")]
    Groups(ssogate::admin::cli::GroupsArgs),
}

fn main() -> ExitCode {
    // One crypto provider for the whole process, before anything touches TLS.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config, probe } => match Config::load(&config, &ProcessSource) {
            Ok(c) => {
                for warning in c.warnings() {
                    eprintln!("{}: warning: {warning}", config.display());
                }
                println!("# {}: valid\n{}", config.display(), c.effective_toml());
                if probe {
                    return probe_live(&c);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{}: {e}", config.display());
                ExitCode::from(2)
            }
        },
        Command::Explain {
            config,
            user,
            groups,
            email,
            provider,
            method,
            url,
        } => {
            let loaded = match Config::load(&config, &ProcessSource) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            let who = ssogate::server::explain::Who {
                user,
                groups: groups.into_iter().filter(|g| !g.is_empty()).collect(),
                email,
                provider,
            };
            match ssogate::server::explain::explain(&loaded, &who, &method, &url) {
                Ok(e) => {
                    print!("{}", e.text);
                    if e.forwarded {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("ssogate explain: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Serve { config } => {
            let loaded = match Config::load(&config, &ProcessSource) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            let _guard = ssogate::telemetry::init(&loaded.logging);
            for warning in loaded.warnings() {
                tracing::warn!("{warning}");
            }
            // `serve` runs its own runtimes: single-threaded workers, one per core by default.
            match ssogate::server::run(loaded, config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "ssogate stopped");
                    eprintln!("ssogate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Health { url, timeout } => match ssogate::health::check(&url, timeout) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ssogate health: {e}");
                ExitCode::FAILURE
            }
        },
        #[cfg(feature = "cognito-admin")]
        Command::Users(args) => ssogate::admin::cli::users(args),
        #[cfg(feature = "cognito-admin")]
        Command::Groups(args) => ssogate::admin::cli::groups(args),
        Command::Demo(args) => {
            run(async move { ssogate::demo::run(args).await.map_err(anyhow::Error::from) })
        }
    }
}

/// `check-config --probe`: one line per live check; exit 1 when one fails.
fn probe_live(config: &Config) -> ExitCode {
    let checks = run_value(async {
        tokio::time::timeout(ssogate::probe::PROBE_LIMIT, ssogate::probe::probe(config)).await
    });
    match checks {
        Some(Ok(checks)) => {
            for check in &checks {
                println!("{check}");
            }
            if checks.iter().all(|c| c.result.is_ok()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            println!("FAIL  probe: the checks did not finish within a minute");
            ExitCode::FAILURE
        }
    }
}

/// Runs `fut` on a fresh runtime; `None` when no runtime can be started.
fn run_value<T>(fut: impl std::future::Future<Output = T>) -> Option<T> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime.block_on(fut)),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            None
        }
    }
}

fn run(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "ssogate stopped");
            eprintln!("ssogate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
