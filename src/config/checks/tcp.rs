//! `kind = "tcp"`: a connect to `host:port`.

use super::KindSpec;
use crate::config::compile::{Compiler, Span};
use crate::config::raw::RawCheck;

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

impl Compiler<'_> {
    pub(in crate::config) fn tcp(&mut self, r: &RawCheck, header: &Span) -> Option<TcpCheck> {
        let v = self.required(&r.address, header, "address", TcpCheck::NAME)?;
        let (address, _) = self.address(v)?;
        Some(TcpCheck { address })
    }
}
