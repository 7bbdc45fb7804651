//! Test PKI (a CA and leaf certificates made with rcgen) and a loopback rustls server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

const DAY: u64 = 86_400;

/// A throwaway certificate authority.
pub struct Pki {
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

/// A leaf certificate and its key, ready for [`TlsServer::start`].
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// `notAfter` in seconds since the Unix epoch.
    pub not_after: u64,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "warden test ca");
        let now = unix_now();
        set_validity(&mut params, now - DAY, now + 365 * DAY);
        let ca_key = KeyPair::generate().expect("ca key");
        let ca = params.self_signed(&ca_key).expect("self-sign the ca");
        Pki { ca, ca_key }
    }

    /// The CA certificate as PEM.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// Writes the CA certificate to `dir/ca.pem` and returns the path.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.ca_pem()).expect("write ca.pem");
        path
    }

    /// Writes a leaf for `name`, valid for `valid_for_secs`, as `dir/NAME.crt` and
    /// `dir/NAME.key` (PEM), for servers configured by file such as `redis-server`.
    pub fn write_leaf(&self, dir: &Path, name: &str, valid_for_secs: i64) -> (PathBuf, PathBuf) {
        let now = unix_now();
        let not_after = now.saturating_add_signed(valid_for_secs);
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("leaf params");
        set_validity(&mut params, not_after.min(now) - 30 * DAY, not_after);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("sign the leaf");
        let (crt, pem_key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&crt, cert.pem()).expect("write leaf cert");
        std::fs::write(&pem_key, key.serialize_pem()).expect("write leaf key");
        (crt, pem_key)
    }

    /// A leaf for `name` (DNS name or IP) valid from 30 days ago until `now + valid_for`
    /// (`valid_for` negative: already expired), signed by this CA.
    pub fn leaf(&self, name: &str, valid_for_secs: i64) -> Leaf {
        let now = unix_now();
        let not_after = now.saturating_add_signed(valid_for_secs);
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("leaf params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        set_validity(&mut params, not_after.min(now) - 30 * DAY, not_after);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("sign the leaf");
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            not_after,
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// A TLS server on a free loopback port that completes handshakes and then waits for the
/// client to close (at most 5 s per connection). Aborted on drop.
pub struct TlsServer {
    port: u16,
    task: JoinHandle<()>,
}

impl TlsServer {
    pub async fn start(leaf: &Leaf) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_no_client_auth()
            .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
            .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let serve = async {
                        if let Ok(mut tls) = acceptor.accept(stream).await {
                            let mut buf = [0u8; 64];
                            let _ = tls.read(&mut buf).await;
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(5), serve).await;
                });
            }
        });
        TlsServer { port, task }
    }

    /// `127.0.0.1:PORT`
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS server on a free loopback port whose certificate can be replaced while it runs, the
/// way a load balancer's certificate is renewed (or wrongly replaced) under a watching probe.
/// Like a real server it keeps a session cache and issues TLS 1.3 tickets, so a client that
/// resumes sessions would keep seeing the old certificate. Aborted on drop.
pub struct RenewableTlsServer {
    port: u16,
    current: Arc<CurrentCert>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct CurrentCert(std::sync::Mutex<Arc<rustls::sign::CertifiedKey>>);

impl rustls::server::ResolvesServerCert for CurrentCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.lock().expect("cert lock").clone())
    }
}

fn certified(leaf: &Leaf) -> Arc<rustls::sign::CertifiedKey> {
    let key = rustls::crypto::ring::sign::any_supported_type(&leaf.key).expect("leaf key");
    Arc::new(rustls::sign::CertifiedKey::new(leaf.chain.clone(), key))
}

impl RenewableTlsServer {
    /// TLS 1.2 and 1.3.
    pub async fn start(leaf: &Leaf) -> RenewableTlsServer {
        Self::start_with(leaf, rustls::DEFAULT_VERSIONS).await
    }

    /// TLS 1.2 only: a client resumes by session id at its next connection, without being
    /// sent the certificate again.
    pub async fn start_tls12(leaf: &Leaf) -> RenewableTlsServer {
        Self::start_with(leaf, &[&rustls::version::TLS12]).await
    }

    async fn start_with(
        leaf: &Leaf,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> RenewableTlsServer {
        let current = Arc::new(CurrentCert(std::sync::Mutex::new(certified(leaf))));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("tls versions")
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let serve = async {
                        if let Ok(mut tls) = acceptor.accept(stream).await {
                            let mut buf = [0u8; 64];
                            let _ = tls.read(&mut buf).await;
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(5), serve).await;
                });
            }
        });
        RenewableTlsServer {
            port,
            current,
            task,
        }
    }

    /// Serves `leaf` from the next handshake on.
    pub fn renew(&self, leaf: &Leaf) {
        *self.current.0.lock().expect("cert lock") = certified(leaf);
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for RenewableTlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_now() -> u64 {
    let ms = warden::clock::Clock::system().now().as_millis();
    u64::try_from(ms / 1000).expect("the clock is after 1970")
}

/// Sets `notBefore`/`notAfter` to these seconds since the Unix epoch (rcgen takes `time`
/// values; building them from its own epoch helper spares a direct dependency on `time`).
fn set_validity(params: &mut CertificateParams, not_before: u64, not_after: u64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(not_before);
    params.not_after = epoch + Duration::from_secs(not_after);
}
