//! ssogate: a single sign-on gateway for Amazon Cognito and OpenID Connect providers.
#![forbid(unsafe_code)]

pub mod config;
pub mod policy;
pub mod identity;
