//! `tls`: connect, complete a TLS handshake, read the leaf certificate's expiry.
//!
//! Value: `days_left`, fractional days from now until the leaf certificate's `notAfter`
//! (negative once expired, which with `verify = true` fails the handshake instead).
//! Trusted roots are the webpki (Mozilla) roots plus the certificates of `ca_file`. With
//! `verify = false` any chain and name are accepted, but handshake signatures are still
//! checked and the certificate is still read. Verification failures (expired, unknown
//! issuer, wrong name) are `tls` errors carrying the reason. rustls runs with the `ring`
//! provider, the only one compiled in. The CA file is read once, when the probe is built.
//! Session resumption is off: every probe is a full handshake that sees and verifies the
//! certificate the server serves now, not the one of a cached session.

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Probe, ProbeError, ProbeErrorKind, Values};
use crate::clock::{Clock, Timestamp};
use crate::config::TlsCheck;

const MILLIS_PER_DAY: f64 = 86_400_000.0;

pub struct TlsProbe {
    address: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    timeout: Duration,
    /// Wall time for `days_left`; the system clock unless [`TlsProbe::with_clock`].
    clock: Clock,
}

impl TlsProbe {
    /// Fails (`setup`) when the CA file cannot be read or holds no certificate, or the
    /// server name is neither a DNS name nor an IP address.
    pub fn new(spec: &TlsCheck, timeout: Duration) -> Result<Self, ProbeError> {
        let setup = |message: String| ProbeError::new(ProbeErrorKind::Setup, message);
        let server_name = ServerName::try_from(spec.server_name.clone())
            .map_err(|e| setup(format!("tls server name {:?}: {e}", spec.server_name)))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(format!("tls config for {}: {e}", spec.address)))?;
        let mut config = if spec.verify {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(path) = &spec.ca_file {
                let certs = read_certificates(path).map_err(setup)?;
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        setup(format!(
                            "ca file {}: unusable certificate: {e}",
                            path.display()
                        ))
                    })?;
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth()
        };
        // A resumed session carries no certificate: the probe would report the cached one
        // (and skip verifying a replacement). Every probe is a full handshake.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(TlsProbe {
            address: spec.address.clone(),
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
            timeout,
            clock: Clock::system(),
        })
    }

    /// Reads "now" for `days_left` from `clock` (certificate verification itself uses the
    /// system time, inside rustls).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    async fn probe(&self) -> Result<Values, ProbeError> {
        let tcp = TcpStream::connect(&self.address).await.map_err(|e| {
            ProbeError::new(
                ProbeErrorKind::Connect,
                format!("connect to {}: {e}", self.address),
            )
        })?;
        let stream = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                let reason = match e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()) {
                    Some(tls) => tls.to_string(),
                    None => e.to_string(),
                };
                ProbeError::new(
                    ProbeErrorKind::Tls,
                    format!(
                        "tls handshake with {} as {}: {reason}",
                        self.address,
                        self.server_name.to_str()
                    ),
                )
            })?;
        let (_, session) = stream.get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .ok_or_else(|| {
                ProbeError::new(
                    ProbeErrorKind::Tls,
                    format!("tls {}: the server sent no certificate", self.address),
                )
            })?;
        let not_after = not_after(leaf).map_err(|e| {
            ProbeError::new(
                ProbeErrorKind::Tls,
                format!("tls {}: leaf certificate: {e}", self.address),
            )
        })?;
        let mut values = Values::new();
        values.insert("days_left".into(), days_left(not_after, self.clock.now()));
        Ok(values)
    }
}

impl Probe for TlsProbe {
    async fn run(&self) -> Result<Values, ProbeError> {
        super::within(self.timeout, &self.address, self.probe()).await
    }
}

/// The PEM certificates of `path`; an empty file is an error (surely a wrong path).
fn read_certificates(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = File::open(path).map_err(|e| format!("ca file {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "ca file {}: no PEM certificate found",
            path.display()
        ));
    }
    Ok(certs)
}

/// The certificate's `notAfter` as seconds since the Unix epoch.
fn not_after(cert: &CertificateDer<'_>) -> Result<i64, String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| e.to_string())?;
    Ok(parsed.validity().not_after.timestamp())
}

/// Fractional days from `now` until `not_after` (seconds since the epoch); negative after.
fn days_left(not_after: i64, now: Timestamp) -> f64 {
    (not_after as f64 * 1000.0 - now.as_millis() as f64) / MILLIS_PER_DAY
}

/// `verify = false`: accepts any chain for any name, still checking handshake signatures
/// so the peer proves it holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left_is_fractional_and_signed() {
        let now = Timestamp::from_millis(1_000_000_000);
        assert_eq!(days_left(1_000_000 + 43_200, now), 0.5);
        assert_eq!(days_left(1_000_000 - 86_400 * 2, now), -2.0);
    }

    #[test]
    fn missing_ca_file_is_a_setup_error() {
        let spec = TlsCheck {
            address: "127.0.0.1:1".into(),
            server_name: "localhost".into(),
            verify: true,
            ca_file: Some("/nonexistent/warden-ca.pem".into()),
        };
        let err = TlsProbe::new(&spec, Duration::from_secs(1)).err();
        assert_eq!(err.map(|e| e.kind), Some(ProbeErrorKind::Setup));
    }
}
