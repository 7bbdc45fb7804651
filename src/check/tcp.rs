//! `tcp`: connect to `host:port` and close. Up when the connection is accepted.

use std::time::Duration;

use tokio::net::TcpStream;

use super::{Probe, ProbeError, ProbeErrorKind, Values};
use crate::config::TcpCheck;

pub struct TcpProbe {
    address: String,
    timeout: Duration,
}

impl TcpProbe {
    pub fn new(spec: &TcpCheck, timeout: Duration) -> Self {
        TcpProbe {
            address: spec.address.clone(),
            timeout,
        }
    }
}

impl Probe for TcpProbe {
    async fn run(&self) -> Result<Values, ProbeError> {
        match tokio::time::timeout(self.timeout, TcpStream::connect(&self.address)).await {
            Ok(Ok(_stream)) => Ok(Values::new()),
            Ok(Err(e)) => Err(ProbeError::new(
                ProbeErrorKind::Connect,
                format!("connect to {}: {e}", self.address),
            )),
            Err(_) => Err(ProbeError::new(
                ProbeErrorKind::Timeout,
                format!("connect to {} timed out", self.address),
            )),
        }
    }
}
