//! `kind = "tls"`: a TLS handshake, the certificate's days left.

use std::path::PathBuf;

use super::KindSpec;
use crate::config::compile::{Compiler, Span};
use crate::config::raw::RawCheck;

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

impl Compiler<'_> {
    pub(in crate::config) fn tls(&mut self, r: &RawCheck, header: &Span) -> Option<TlsCheck> {
        let address = self
            .required(&r.address, header, "address", TlsCheck::NAME)
            .and_then(|v| self.address(v));
        let server_name = match &r.server_name {
            None => Some(None),
            Some(v) => self.text(v).and_then(|name| {
                if name.is_empty() || name.contains(char::is_whitespace) {
                    self.error(
                        v.span(),
                        format!(r#"invalid server_name {name:?}: expected a host name, e.g. "example.com""#),
                    );
                    None
                } else {
                    Some(Some(name))
                }
            }),
        };
        let ca_file = self.ca_file(r.ca_file.as_ref());
        let ((address, host), server_name, ca_file) = (address?, server_name?, ca_file?);
        Some(TlsCheck {
            address,
            server_name: server_name.unwrap_or(host),
            verify: r.verify.as_ref().is_none_or(|v| *v.get_ref()),
            ca_file,
        })
    }
}
