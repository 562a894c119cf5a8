//! `ssogate demo`: the gateway in front of an echo app, signing in through a built-in
//! Cognito-shaped test provider, all on loopback. Never used by production paths.

mod keys;

pub use keys::RsaSigner;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo is not built yet")]
    NotYet,
}

pub async fn run(_args: DemoArgs) -> Result<(), DemoError> {
    Err(DemoError::NotYet)
}
