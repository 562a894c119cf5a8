//! Sign-in on the request path: sessions from cookies, the sign-in flow endpoints.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use http::header::HeaderValue;
use http::{Request, Response};
use hyper::body::Incoming;

use super::pages::GatewayError;
use crate::config::Config;
use crate::identity::{IdentityHeaders, Principal};
use crate::proxy::{Body, ClientInfo};
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("{0}")]
    Invalid(String),
}

pub struct Auth {}

pub struct LiveSession {
    pub principal: Principal,
    pub headers: IdentityHeaders,
    pub set_cookies: Option<Vec<HeaderValue>>,
}

pub struct AuthAnswer(GatewayError);

impl AuthAnswer {
    pub fn into_response(
        self,
        _req: &Request<Incoming>,
        _client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        Err(self.0)
    }
}

impl Auth {
    pub fn new(_config: Arc<Config>, _metrics: Arc<Metrics>) -> Result<Auth, AuthSetupError> {
        Ok(Auth {})
    }
    pub fn start_background(self: Arc<Self>, _ready: Arc<AtomicBool>) {}
    pub fn not_ready_reason(&self) -> String {
        String::new()
    }
    pub async fn authenticate(
        &self,
        _req: &Request<Incoming>,
        _client: &ClientInfo,
    ) -> Result<Arc<LiveSession>, AuthAnswer> {
        Err(AuthAnswer(GatewayError::SignInRequired))
    }
    pub async fn endpoint(
        &self,
        _endpoint: &str,
        _req: &mut Request<Incoming>,
        _client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        Err(GatewayError::NotFound)
    }
}
