//! TLS test helpers: self-signed certificates in a temp dir, a TLS client that pins a
//! fingerprint (to see which certificate a server presents), a recording TLS or TCP server
//! (what bytes arrive), and running a test inside a private network namespace with a veth pair
//! (non-loopback addresses, no traffic leaves the machine).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use roomcam::server::tls::{SelfSigned, self_signed};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::server::HANG_GUARD;

/// A fresh directory for one test.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("roomcam-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A self-signed pair for `hosts`, written as `<dir>/<name>.crt` and `.key`.
pub fn cert_pair(dir: &Path, name: &str, hosts: &[&str]) -> (SelfSigned, PathBuf, PathBuf) {
    let s = self_signed(&hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    s.write(&cert, &key).unwrap();
    (s, cert, key)
}

/// Accepts exactly the certificate with this SHA-256 fingerprint (signatures still checked).
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    seen: Arc<Mutex<Option<String>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = roomcam::server::tls::fingerprint(end_entity);
        *self.seen.lock().unwrap() = Some(fp.clone());
        if fp == self.fingerprint || self.fingerprint.is_empty() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects with TLS and returns the fingerprint of the certificate the server presented
/// (any certificate is accepted: this only looks).
pub async fn presented_fingerprint(addr: SocketAddr) -> String {
    let seen = Arc::new(Mutex::new(None));
    let _ = https_get_pinned(addr, "/healthz", "", seen.clone()).await;
    seen.lock().unwrap().clone().expect("no certificate seen")
}

/// GET over HTTPS, accepting only the certificate with `fingerprint`; (status, body).
pub async fn https_get(addr: SocketAddr, path: &str, fingerprint: &str) -> (u16, String) {
    https_get_pinned(addr, path, fingerprint, Arc::new(Mutex::new(None)))
        .await
        .expect("https get")
}

async fn https_get_pinned(
    addr: SocketAddr,
    path: &str,
    fingerprint: &str,
    seen: Arc<Mutex<Option<String>>>,
) -> std::io::Result<(u16, String)> {
    let connector = pinned_connector(fingerprint, seen);
    let fut = async {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::IpAddress(addr.ip().into());
        let mut s = connector.connect(name, tcp).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let r = s.read_to_end(&mut buf).await;
        if buf.is_empty() {
            r?;
        }
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        Ok((status, body))
    };
    tokio::time::timeout(HANG_GUARD, fut)
        .await
        .expect("https get hang")
}

fn pinned_connector(
    fingerprint: &str,
    seen: Arc<Mutex<Option<String>>>,
) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint: fingerprint.to_string(),
            seen,
            provider,
        }))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// A TLS client connection accepting only the certificate with `fingerprint`.
pub async fn tls_connect(
    tcp: TcpStream,
    addr: SocketAddr,
    fingerprint: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = pinned_connector(fingerprint, Arc::new(Mutex::new(None)));
    tokio::time::timeout(
        HANG_GUARD,
        connector.connect(ServerName::IpAddress(addr.ip().into()), tcp),
    )
    .await
    .expect("TLS handshake hang")
    .expect("TLS handshake")
}

/// What a recording server saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// TCP connections accepted.
    pub connections: usize,
    /// TLS handshakes that failed (with the error).
    pub handshake_errors: Vec<String>,
    /// Application bytes received (decrypted, for TLS).
    pub bytes: Vec<u8>,
}

/// A server that accepts connections (TLS with `cert`/`key` when given) and records what
/// arrives, answering nothing.
pub async fn recording_server(
    bind: SocketAddr,
    tls: Option<(&Path, &Path)>,
) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let acceptor = tls.map(|(cert, key)| {
        let store = Arc::new(roomcam::server::tls::CertStore::load(cert, key).unwrap());
        tokio_rustls::TlsAcceptor::from(store.server_config().unwrap())
    });
    let rec = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            rec.lock().unwrap().connections += 1;
            let rec = rec.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                match acceptor {
                    Some(a) => match a.accept(tcp).await {
                        Ok(mut s) => {
                            while let Ok(n) = s.read(&mut buf).await {
                                if n == 0 {
                                    break;
                                }
                                rec.lock().unwrap().bytes.extend_from_slice(&buf[..n]);
                            }
                        }
                        Err(e) => rec.lock().unwrap().handshake_errors.push(e.to_string()),
                    },
                    None => {
                        let mut s = tcp;
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            rec.lock().unwrap().bytes.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// The addresses of the veth pair inside the private namespace.
pub const VETH_A: &str = "10.77.0.1";
pub const VETH_B: &str = "10.77.0.2";

const IN_NETNS: &str = "ROOMCAM_TEST_IN_NETNS";

/// Runs the calling test inside a fresh network namespace (`unshare -n`, or `unshare -r -n`
/// when not root) with loopback up and a veth pair `VETH_A` <-> `VETH_B`: real
/// non-loopback addresses that reach nothing outside. Returns true when the caller is already
/// inside and should do its work; false in the parent, after the child passed.
pub fn in_private_netns(test_name: &str) -> bool {
    if std::env::var_os(IN_NETNS).is_some() {
        let sh = format!(
            "ip link set lo up && ip link add rct0 type veth peer name rct1 && \
             ip addr add {VETH_A}/24 dev rct0 && ip addr add {VETH_B}/24 dev rct1 && \
             ip link set rct0 up && ip link set rct1 up"
        );
        let st = std::process::Command::new("sh")
            .args(["-c", &sh])
            .status()
            .expect("run ip");
        assert!(st.success(), "cannot set up the veth pair in the namespace");
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let run = |flags: &[&str]| {
        std::process::Command::new("unshare")
            .args(flags)
            .arg(&exe)
            .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
            .env(IN_NETNS, "1")
            .output()
            .expect("cannot run unshare (util-linux)")
    };
    // As root a network namespace is enough; otherwise a user namespace maps us to root in it
    // (Debian allows unprivileged user namespaces).
    let mut out = run(&["-n"]);
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unshare failed") {
        out = run(&["-r", "-n"]);
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the test inside the network namespace failed:\n{text}"
    );
    // The child really ran this test (a filter that matched nothing would pass silently).
    assert!(
        text.contains("1 passed"),
        "child did not run {test_name}:\n{text}"
    );
    false
}
