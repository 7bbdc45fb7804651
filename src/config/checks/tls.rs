//! `kind = "tls"`: a TLS handshake, the certificate's days left.

use std::path::PathBuf;

use super::KindSpec;

#[derive(Debug, Clone, PartialEq)]
pub struct TlsCheck {
    /// `host:port`.
    pub address: String,
    /// SNI and verification name; default the host part of `address`.
    pub server_name: String,
    /// Verify the chain and name (default true). With `false` the days left are still read.
    pub verify: bool,
    pub ca_file: Option<PathBuf>,
}

impl KindSpec for TlsCheck {
    const NAME: &'static str = "tls";
    const KEYS: &'static [&'static str] = &["address", "server_name", "verify", "ca_file"];
    const VALUES: &'static [&'static str] = &["days_left"];
}
