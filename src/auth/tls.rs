//! TLS for client connections: a certificate chain and key in PEM files,
//! served with rustls (ring) through pgwire, which answers PostgreSQL's
//! SSLRequest.

use std::path::PathBuf;
use std::sync::Arc;

use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::AuthError;

/// Where the certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The acceptor for `config`'s certificate and key.
pub fn tls_acceptor(config: &TlsConfig) -> Result<TlsAcceptor, AuthError> {
    let certs = CertificateDer::pem_file_iter(&config.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| AuthError::Tls(format!("certificate {}: {e}", config.cert.display())))?;
    if certs.is_empty() {
        return Err(AuthError::Tls(format!("certificate {}: no certificate in the file", config.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|e| AuthError::Tls(format!("key {}: {e}", config.key.display())))?;
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| AuthError::Tls(format!("{} and {}: {e}", config.cert.display(), config.key.display())))?;
    // PostgreSQL 17's direct TLS (sslnegotiation=direct) asks for this ALPN.
    server.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
