//! OTLP/HTTP transport over `ureq`: a blocking client that owns no thread and no runtime, so it
//! needs nothing to survive a fork (a fresh one is built in each process's export thread).

use std::io::Write;
use std::sync::Arc;

use super::retry::{self, Retry};
use super::tls;
use crate::config::{Compression, OtlpConfig};

pub struct HttpTransport {
    /// `Err`: TLS could not be set up (a CA or client file is missing or bad); every export
    /// fails with that line, as if the collector could not be reached.
    agent: Result<ureq::Agent, String>,
    url: String,
    headers: Vec<(String, String)>,
    compression: Compression,
    /// Bounds one export with all its retries (see `retry`).
    timeout: std::time::Duration,
}

impl HttpTransport {
    pub fn new(c: &OtlpConfig) -> Self {
        let builder = ureq::AgentBuilder::new().timeout(c.timeout).user_agent(concat!("ferrotel/", env!("CARGO_PKG_VERSION")));
        let agent = if c.endpoint.starts_with("https://") {
            tls::load(&c.tls)
                .and_then(tls::http_config)
                .map(|config| builder.tls_connector(Arc::new(tls::HttpConnector(config))).build())
                .map_err(|e| format!("TLS setup failed: {e}"))
        } else {
            Ok(builder.build())
        };
        HttpTransport { agent, url: c.endpoint.clone(), headers: c.headers.clone(), compression: c.compression, timeout: c.timeout }
    }

    /// POST one protobuf-encoded export request, retrying transient failures (see `retry`).
    pub fn post(&self, mut body: Vec<u8>) -> Result<(), String> {
        if self.compression == Compression::Gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2), flate2::Compression::fast());
            enc.write_all(&body).map_err(|e| e.to_string())?;
            body = enc.finish().map_err(|e| e.to_string())?;
        }
        let agent = self.agent.as_ref().map_err(|e| e.clone())?;
        let mut retry = Retry::new(self.timeout);
        loop {
            let mut req = agent.post(&self.url).timeout(retry.remaining()).set("Content-Type", "application/x-protobuf");
            for (k, v) in &self.headers {
                req = req.set(k, v);
            }
            if self.compression == Compression::Gzip {
                req = req.set("Content-Encoding", "gzip");
            }
            let (error, retry_after) = match req.send_bytes(&body) {
                Ok(_) => return Ok(()),
                Err(ureq::Error::Status(code, resp)) if matches!(code, 429 | 502 | 503 | 504) => {
                    (format!("HTTP {code}"), retry::parse_retry_after(resp.header("Retry-After")))
                }
                Err(ureq::Error::Status(code, _)) => return Err(format!("HTTP {code} (not retryable)")),
                Err(e) => match tls::failure(&e) {
                    Some(t) => return Err(format!("TLS: {t} (not retried)")),
                    None => (describe(&e.to_string(), &self.url), None),
                },
            };
            match retry.next(retry_after) {
                Some(wait) => std::thread::sleep(wait),
                None => return Err(error),
            }
        }
    }

    pub fn target(&self) -> String {
        format!("OTLP/HTTP {}", self.url)
    }
}

/// A transport error as one readable line. ureq writes `<url>: <kind>: <message>: <source>`, and
/// its kind and an I/O source often say the same thing (`Network Error: Network Error: ...`); the
/// log line names the URL already (`export to OTLP/HTTP <url> failed: ...`). So: without the URL,
/// and without a part that repeats the one before it.
fn describe(error: &str, url: &str) -> String {
    let text = error.strip_prefix(url).and_then(|t| t.strip_prefix(": ")).unwrap_or(error);
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last().is_none_or(|last| !last.eq_ignore_ascii_case(part.trim())) {
            parts.push(part.trim());
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn transport_errors_read_once() {
        let url = "http://collector:4318/v1/traces";
        assert_eq!(
            describe("http://collector:4318/v1/traces: Network Error: Network Error: Connection refused (os error 111)", url),
            "Network Error: Connection refused (os error 111)"
        );
        assert_eq!(
            describe("Connection Failed: Connect error: connection refused (os error 111)", url),
            "Connection Failed: Connect error: connection refused (os error 111)"
        );
    }
}
