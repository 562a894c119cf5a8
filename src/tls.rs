//! TLS both ways with rustls and the ring provider: the outbound connector (webpki roots plus
//! an optional CA file) and the inbound acceptor for `[server.tls]`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: cannot read {path}: {reason}")]
    File {
        key: &'static str,
        path: String,
        reason: String,
    },
    #[error("{key}: {reason}")]
    Config { key: &'static str, reason: String },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// HTTP and HTTPS (HTTP/1.1) with TCP_NODELAY and a connect timeout.
pub fn https_connector(
    connect_timeout: Duration,
    ca_file: Option<&Path>,
    ca_key: &'static str,
) -> Result<HttpsConnector<HttpConnector>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsError::File {
                key: ca_key,
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        for cert in certs {
            roots.add(cert).map_err(|e| TlsError::Config {
                key: ca_key,
                reason: format!("{}: {e}", path.display()),
            })?;
        }
    }
    let tls = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config {
            key: ca_key,
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// The server side of `[server.tls]`, offering h2 and http/1.1.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let file_err = |key, path: &Path, e: &dyn std::fmt::Display| TlsError::File {
        key,
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_err("server.tls.cert_file", cert_file, &e))?;
    if certs.is_empty() {
        return Err(TlsError::Config {
            key: "server.tls.cert_file",
            reason: format!("{} holds no PEM certificate", cert_file.display()),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| file_err("server.tls.key_file", key_file, &e))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config {
            key: "server.tls",
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config {
            key: "server.tls",
            reason: format!("the key does not fit the certificate: {e}"),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
