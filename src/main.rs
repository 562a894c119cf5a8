//! The `ssogate` command: `serve`, `check-config`, `demo`, and (feature `cognito-admin`)
//! `users` / `groups`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ssogate::config::{Config, ProcessSource};

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
    },
    /// The whole sign-in flow on this machine: gateway, a Cognito-like test provider and an
    /// echo app, all on loopback.
    Demo(ssogate::demo::DemoArgs),
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
        Command::CheckConfig { config } => match Config::load(&config, &ProcessSource) {
            Ok(c) => {
                for warning in c.warnings() {
                    eprintln!("{}: warning: {warning}", config.display());
                }
                println!("# {}: valid\n{}", config.display(), c.effective_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{}: {e}", config.display());
                ExitCode::from(2)
            }
        },
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
            // `serve` runs its own runtimes: single-threaded workers, two per core by default.
            match ssogate::server::run(loaded) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "ssogate stopped");
                    eprintln!("ssogate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        #[cfg(feature = "cognito-admin")]
        Command::Users(args) => ssogate::admin::cli::users(args),
        #[cfg(feature = "cognito-admin")]
        Command::Groups(args) => ssogate::admin::cli::groups(args),
        Command::Demo(args) => {
            run(async move { ssogate::demo::run(args).await.map_err(anyhow::Error::from) })
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
