//! `kind = "tcp"`: a connect to `host:port`.

use super::KindSpec;

#[derive(Debug, Clone, PartialEq)]
pub struct TcpCheck {
    /// `host:port`.
    pub address: String,
}

impl KindSpec for TcpCheck {
    const NAME: &'static str = "tcp";
    const KEYS: &'static [&'static str] = &["address"];
    const VALUES: &'static [&'static str] = &[];
}
