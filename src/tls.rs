//! TLS both ways with rustls and the ring provider: the outbound connector (webpki roots plus
//! an optional CA file) and the inbound acceptor for `[server.tls]`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
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

/// The server side of `[server.tls]`, offering h2 and http/1.1, with the certificate that
/// `CertFiles` holds (and may replace while the gateway runs).
pub fn server_config(files: Arc<CertFiles>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config {
            key: "server.tls",
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(files);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `server.tls.cert_file` and `key_file`, and the certificate they held when last read:
/// every handshake takes the current one. `reload` reads them again (cert-manager and
/// Let's Encrypt renew certificates in place); a pair that does not load keeps the old one.
#[derive(Debug)]
pub struct CertFiles {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// The files' bytes behind `current`, to tell a change.
    read: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl CertFiles {
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<CertFiles, TlsError> {
        let (cert_pem, key_pem) = read_pair(cert_file, key_file)?;
        let key = certified_key(cert_file, &cert_pem, key_file, &key_pem)?;
        Ok(CertFiles {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: ArcSwap::from_pointee(key),
            read: Mutex::new((cert_pem, key_pem)),
        })
    }

    /// Reads the files again; true when they changed and the new pair is in use.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let (cert_pem, key_pem) = read_pair(&self.cert_file, &self.key_file)?;
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if read.0 == cert_pem && read.1 == key_pem {
            return Ok(false);
        }
        let key = certified_key(&self.cert_file, &cert_pem, &self.key_file, &key_pem)?;
        self.current.store(Arc::new(key));
        *read = (cert_pem, key_pem);
        Ok(true)
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_pair(cert_file: &Path, key_file: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |key, path: &Path| {
        std::fs::read(path).map_err(|e| TlsError::File {
            key,
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    };
    Ok((
        read("server.tls.cert_file", cert_file)?,
        read("server.tls.key_file", key_file)?,
    ))
}

fn certified_key(
    cert_file: &Path,
    cert_pem: &[u8],
    key_file: &Path,
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Config {
            key: "server.tls.cert_file",
            reason: format!("{}: {e}", cert_file.display()),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Config {
            key: "server.tls.cert_file",
            reason: format!("{} holds no PEM certificate", cert_file.display()),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Config {
        key: "server.tls.key_file",
        reason: format!("{}: {e}", key_file.display()),
    })?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Config {
        key: "server.tls",
        reason: format!("the key does not fit the certificate: {e}"),
    })
}
