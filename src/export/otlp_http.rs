//! OTLP/HTTP with protobuf bodies, over `ureq`: a blocking client that owns no thread and no
//! runtime, so it needs nothing to survive a fork (a fresh one is built in each process).

use std::io::Write;

use prost::Message;

use super::{otlp, SpanExporter};
use crate::config::{Compression, OtlpConfig};
use crate::resource::Resource;
use crate::span::SpanRecord;

pub struct HttpExporter {
    agent: ureq::Agent,
    endpoint: String,
    headers: Vec<(String, String)>,
    compression: Compression,
}

impl HttpExporter {
    pub fn new(c: &OtlpConfig) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(c.timeout).user_agent(concat!("ferrotel/", env!("CARGO_PKG_VERSION"))).build();
        HttpExporter { agent, endpoint: c.endpoint.clone(), headers: c.headers.clone(), compression: c.compression }
    }
}

impl SpanExporter for HttpExporter {
    fn export(&mut self, batch: &[SpanRecord], resource: &Resource) -> Result<(), String> {
        let mut body = otlp::encode_request(batch, resource).encode_to_vec();
        let mut req = self.agent.post(&self.endpoint).set("Content-Type", "application/x-protobuf");
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

    fn target(&self) -> String {
        format!("OTLP/HTTP {}", self.endpoint)
    }
}
