//! Cognito user administration and role mapping. Owns `[roles]` (`roles.rs`, always built)
//! and, with the `cognito-admin` feature, the Cognito admin API client (`pool.rs`, the one
//! place that talks to the AWS SDK), the pool's password policy (`password.rs`), the
//! `ssogate users` / `groups` commands (`cli.rs`) and the admin page (`page.rs`). Never decides
//! who may pass a route: that is `policy`'s.

pub mod roles;

#[cfg(feature = "cognito-admin")]
pub mod cli;
#[cfg(feature = "cognito-admin")]
pub mod page;
#[cfg(feature = "cognito-admin")]
pub mod password;
#[cfg(feature = "cognito-admin")]
pub mod pool;
