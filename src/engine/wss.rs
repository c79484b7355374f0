//! The engine's `wss://` trust: which CA certificates it accepts for the room service (the
//! system's roots, or only the configured `[server] ca_file`), and how a refused certificate is
//! told to people (host and reason: unknown issuer, wrong name, expired).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::protocol::ErrorCode;

/// Why the trusted CAs could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("[server] ca_file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error(
        "no system root certificates found (install Debian's ca-certificates, or set [server] ca_file)"
    )]
    NoSystemRoots,
}

/// Where the trusted CAs come from (named in error messages).
#[derive(Debug, Clone)]
pub enum TrustSource {
    CaFile(PathBuf),
    System,
}

/// A rustls client config for the room service, and where its roots came from.
#[derive(Clone)]
pub struct Trust {
    pub config: Arc<rustls::ClientConfig>,
    pub source: TrustSource,
}

impl Trust {
    /// With a `ca_file`, only the CAs in it are trusted (the system roots are not: a device
    /// told which CA its server uses trusts no other); without one, the system's roots.
    pub fn new(ca_file: Option<&Path>) -> Result<Trust, TrustError> {
        let mut roots = RootCertStore::empty();
        let source = match ca_file {
            Some(path) => {
                let err = |message: String| TrustError::CaFile {
                    path: path.to_path_buf(),
                    message,
                };
                let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
                let certs = CertificateDer::pem_slice_iter(&bytes)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| err(format!("not a PEM file: {e}")))?;
                if certs.is_empty() {
                    return Err(err(
                        "no PEM certificate (\"-----BEGIN CERTIFICATE-----\") in it".into(),
                    ));
                }
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| err(format!("unusable certificate: {e}")))?;
                }
                TrustSource::CaFile(path.to_path_buf())
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::warn!(error = %e, "skipping a system root certificate");
                }
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(TrustError::NoSystemRoots);
                }
                TrustSource::System
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::CaFile {
            path: PathBuf::new(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Trust {
            config: Arc::new(config),
            source,
        })
    }
}

/// The rustls error inside a connect error, if the TLS handshake is what failed.
fn rustls_error(e: &tokio_tungstenite::tungstenite::Error) -> Option<&rustls::Error> {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::TlsError;
    match e {
        Error::Tls(TlsError::Rustls(r)) => Some(r),
        Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// The error code and message for a failed connect: a refused server certificate names the host
/// and the reason; anything else is a plain connection failure.
pub fn describe_connect_error(
    url: &str,
    host: &str,
    trust: Option<&TrustSource>,
    e: &tokio_tungstenite::tungstenite::Error,
) -> (ErrorCode, String) {
    let Some(tls) = rustls_error(e) else {
        return (
            ErrorCode::ConnectionFailed,
            format!("cannot connect to {url}: {e}"),
        );
    };
    let rustls::Error::InvalidCertificate(cert) = tls else {
        return (
            ErrorCode::ConnectionFailed,
            format!("TLS handshake with {host} failed: {tls}"),
        );
    };
    let trusted = match trust {
        Some(TrustSource::CaFile(p)) => format!("the CA in [server] ca_file {}", p.display()),
        _ => "the system's root certificates".to_string(),
    };
    let reason = match cert {
        CertificateError::UnknownIssuer => {
            format!("unknown issuer: it is not signed by {trusted}")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("name mismatch: it is not issued for {host}")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "expired".to_string()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not valid yet (is this device's clock right?)".to_string()
        }
        CertificateError::Revoked => "revoked".to_string(),
        // An issuer of the trusted name but another key: a regenerated self-signed
        // certificate, or another CA that took the same name.
        CertificateError::BadSignature => format!(
            "unknown issuer: it is not signed by {trusted} (the issuer has the same name but \
             another key)"
        ),
        other => format!("{other:?}"),
    };
    (
        ErrorCode::TlsCertificateRejected,
        format!("refused the TLS certificate of {host}: {reason}"),
    )
}
