//! OTLP/gRPC over tonic. tonic needs a tokio runtime; this exporter owns a current-thread one,
//! created on the export thread of the process that uses it (a runtime does not survive fork,
//! so a forked worker builds its own with its own exporter).

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::{otlp, SpanExporter};
use crate::config::{Compression, OtlpConfig};
use crate::resource::Resource;
use crate::span::SpanRecord;

pub struct GrpcExporter {
    endpoint: String,
    state: Result<(tokio::runtime::Runtime, TraceServiceClient<Channel>), String>,
    headers: Vec<(MetadataKey<tonic::metadata::Ascii>, MetadataValue<tonic::metadata::Ascii>)>,
    timeout: std::time::Duration,
}

impl GrpcExporter {
    pub fn new(c: &OtlpConfig) -> Self {
        let state = (|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            let endpoint = Endpoint::from_shared(c.endpoint.clone())
                .map_err(|e| e.to_string())?
                .connect_timeout(c.timeout)
                .timeout(c.timeout);
            let channel = {
                let _guard = rt.enter();
                endpoint.connect_lazy()
            };
            let mut client = TraceServiceClient::new(channel);
            if c.compression == Compression::Gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            Ok((rt, client))
        })();
        let headers = c
            .headers
            .iter()
            .filter_map(|(k, v)| Some((MetadataKey::from_bytes(k.as_bytes()).ok()?, MetadataValue::try_from(v.as_str()).ok()?)))
            .collect();
        GrpcExporter { endpoint: c.endpoint.clone(), state, headers, timeout: c.timeout }
    }
}

impl SpanExporter for GrpcExporter {
    fn export(&mut self, batch: &[SpanRecord], resource: &Resource) -> Result<(), String> {
        let (rt, client) = self.state.as_mut().map_err(|e| e.clone())?;
        let mut req = tonic::Request::new(otlp::encode_request(batch, resource));
        req.set_timeout(self.timeout);
        for (k, v) in &self.headers {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        let timeout = self.timeout;
        rt.block_on(async {
            match tokio::time::timeout(timeout, client.export(req)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(status)) => Err(format!("gRPC {:?}: {}", status.code(), status.message())),
                Err(_) => Err(format!("gRPC export timed out after {timeout:?}")),
            }
        })
    }

    fn target(&self) -> String {
        format!("OTLP/gRPC {}", self.endpoint)
    }
}
