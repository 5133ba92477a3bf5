//! OTLP/HTTP transport over `ureq`: a blocking client that owns no thread and no runtime, so it
//! needs nothing to survive a fork (a fresh one is built in each process's export thread).

use std::io::Write;

use crate::config::{Compression, OtlpConfig};

pub struct HttpTransport {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    compression: Compression,
}

impl HttpTransport {
    pub fn new(c: &OtlpConfig) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(c.timeout).user_agent(concat!("ferrotel/", env!("CARGO_PKG_VERSION"))).build();
        HttpTransport { agent, url: c.endpoint.clone(), headers: c.headers.clone(), compression: c.compression }
    }

    /// POST one protobuf-encoded export request.
    pub fn post(&self, mut body: Vec<u8>) -> Result<(), String> {
        let mut req = self.agent.post(&self.url).set("Content-Type", "application/x-protobuf");
        for (k, v) in &self.headers {
            req = req.set(k, v);
        }
        if self.compression == Compression::Gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2), flate2::Compression::fast());
            enc.write_all(&body).map_err(|e| e.to_string())?;
            body = enc.finish().map_err(|e| e.to_string())?;
            req = req.set("Content-Encoding", "gzip");
        }
        match req.send_bytes(&body) {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, _)) => Err(format!("HTTP {code}")),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn target(&self) -> String {
        format!("OTLP/HTTP {}", self.url)
    }
}
