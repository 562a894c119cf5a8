//! ssogate: a single sign-on gateway for Amazon Cognito and OpenID Connect providers.
#![forbid(unsafe_code)]

pub mod admin;
pub mod coarse;
pub mod config;
pub mod demo;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod identity;
pub mod oidc;
pub mod policy;
pub mod probe;
pub mod proxy;
pub mod runtime_slot;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod tls;
