//! TLS for the room service: loading the `[tls]` PEM certificate and key, the reloadable
//! certificate holder (a reload swaps it: new handshakes get the new certificate, open
//! connections keep theirs, and a bad new pair keeps the old one), self-signed certificates for
//! test setups (`roomcam-server selfsign`, `roomcam demo` beyond loopback) and SHA-256
//! fingerprints. The accept loop that uses it is [`super::listener`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate (\"-----BEGIN CERTIFICATE-----\") in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a PEM file: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("{path}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it")]
    NoKey { path: PathBuf },
    #[error("{path}: the private key cannot be used: {message}")]
    BadKey { path: PathBuf, message: String },
    #[error("{key} does not belong to the certificate in {cert}: {message}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The crypto provider used everywhere (aws-lc-rs, already linked for str0m's DTLS).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A certificate chain and its key, checked to belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let certs = load_certs(cert)?;
    let bytes = read(key)?;
    let der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: key.to_path_buf(),
        },
        e => TlsError::Pem {
            path: key.to_path_buf(),
            message: e.to_string(),
        },
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::BadKey {
            path: key.to_path_buf(),
            message: e.to_string(),
        })?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|e| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(ck)
}

/// The SHA-256 fingerprint of a DER certificate, as browsers show it (`AB:CD:…`).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut s = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// The served certificate, swapped by [`CertStore::reload`].
pub struct CertStore {
    cert_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("cert", &self.cert_path)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl CertStore {
    /// Loads the pair (an error here stops the server from starting).
    pub fn load(cert: &Path, key: &Path) -> Result<CertStore, TlsError> {
        let ck = load_certified_key(cert, key)?;
        Ok(CertStore {
            cert_path: cert.to_path_buf(),
            current: RwLock::new(Arc::new(ck)),
        })
    }

    /// Re-reads the files (from a reloaded config: their paths may have changed). On an error
    /// the old certificate stays in service. Returns the new fingerprint.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<String, TlsError> {
        let ck = Arc::new(load_certified_key(cert, key)?);
        let fp = ck
            .end_entity_cert()
            .map(|c| fingerprint(c))
            .unwrap_or_default();
        match self.current.write() {
            Ok(mut cur) => *cur = ck,
            Err(poisoned) => *poisoned.into_inner() = ck,
        }
        Ok(fp)
    }

    fn get(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The fingerprint of the certificate now served.
    pub fn fingerprint(&self) -> String {
        self.get()
            .end_entity_cert()
            .map(|c| fingerprint(c))
            .unwrap_or_default()
    }

    /// The rustls server config serving this store's certificate (HTTP/1.1 only: WebSocket
    /// upgrades need it, and the router speaks nothing else).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// A freshly generated self-signed certificate and its key, PEM-encoded.
pub struct SelfSigned {
    pub cert_pem: String,
    pub key_pem: String,
    pub fingerprint: String,
}

/// Generates a self-signed ECDSA P-256 certificate valid for `hosts` (DNS names or IP
/// addresses; the first is also the common name).
pub fn self_signed(hosts: &[String]) -> Result<SelfSigned, TlsError> {
    if hosts.is_empty() {
        return Err(TlsError::Generate("no host name given".into()));
    }
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())
        .map_err(|e| TlsError::Generate(format!("host {hosts:?}: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hosts[0].clone());
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok(SelfSigned {
        cert_pem: pem("CERTIFICATE", cert.der()),
        key_pem: pem("PRIVATE KEY", key.serialized_der()),
        fingerprint: fingerprint(cert.der()),
    })
}

impl SelfSigned {
    /// Writes the certificate and the key (the key readable by its owner only).
    pub fn write(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        write_file(cert, &self.cert_pem, 0o644)?;
        write_file(key, &self.key_pem, 0o600)
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Write beside the target and rename, so a reload never reads half a file.
    let tmp = path.with_extension("tmp-roomcam");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// PEM encoding (RFC 7468): base64 in 64-character lines between the markers.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("roomcam-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn self_signed_round_trips_and_reload_keeps_old_on_error() {
        let d = tmpdir("unit");
        let a = self_signed(&["a.example".into(), "127.0.0.1".into()]).unwrap();
        a.write(&d.join("a.crt"), &d.join("a.key")).unwrap();
        let store = CertStore::load(&d.join("a.crt"), &d.join("a.key")).unwrap();
        assert_eq!(store.fingerprint(), a.fingerprint);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);

        let b = self_signed(&["b.example".into()]).unwrap();
        b.write(&d.join("b.crt"), &d.join("b.key")).unwrap();
        // A key of another certificate is refused, and the old certificate stays.
        let e = store
            .reload(&d.join("b.crt"), &d.join("a.key"))
            .unwrap_err();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
        assert_eq!(store.fingerprint(), a.fingerprint);
        // Garbage and missing files are clear errors.
        std::fs::write(d.join("junk.crt"), "hello").unwrap();
        let e = store
            .reload(&d.join("junk.crt"), &d.join("a.key"))
            .unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let e = store
            .reload(&d.join("missing.crt"), &d.join("a.key"))
            .unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        assert_eq!(store.fingerprint(), a.fingerprint);
        // A good pair is taken.
        let fp = store.reload(&d.join("b.crt"), &d.join("b.key")).unwrap();
        assert_eq!(fp, b.fingerprint);
        assert_eq!(store.fingerprint(), b.fingerprint);
        let _ = std::fs::remove_dir_all(&d);
    }
}
