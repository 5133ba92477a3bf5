//! OTLP/gRPC transport over tonic. tonic needs a tokio runtime; this transport owns a
//! current-thread one, created on the export thread of the process that uses it (a runtime does
//! not survive fork, so a forked worker builds its own).

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::config::{Compression, OtlpConfig};

pub struct GrpcTransport {
    endpoint: String,
    state: Result<(tokio::runtime::Runtime, Channel), String>,
    headers: Vec<(MetadataKey<Ascii>, MetadataValue<Ascii>)>,
    timeout: Duration,
    gzip: bool,
}

impl GrpcTransport {
    pub fn new(c: &OtlpConfig) -> Self {
        let state = (|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            let endpoint = Endpoint::from_shared(c.endpoint.clone()).map_err(|e| e.to_string())?.connect_timeout(c.timeout).timeout(c.timeout);
            let channel = {
                let _guard = rt.enter();
                endpoint.connect_lazy()
            };
            Ok((rt, channel))
        })();
        let headers = c
            .headers
            .iter()
            .filter_map(|(k, v)| Some((MetadataKey::from_bytes(k.as_bytes()).ok()?, MetadataValue::try_from(v.as_str()).ok()?)))
            .collect();
        GrpcTransport { endpoint: c.endpoint.clone(), state, headers, timeout: c.timeout, gzip: c.compression == Compression::Gzip }
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.timeout);
        for (k, v) in &self.headers {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        req
    }

    fn run<F, R>(&self, f: impl FnOnce(Channel) -> F) -> Result<(), String>
    where
        F: std::future::Future<Output = Result<R, tonic::Status>>,
    {
        let (rt, channel) = self.state.as_ref().map_err(|e| e.clone())?;
        let timeout = self.timeout;
        let fut = f(channel.clone());
        rt.block_on(async {
            match tokio::time::timeout(timeout, fut).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(status)) => Err(format!("gRPC {:?}: {}", status.code(), status.message())),
                Err(_) => Err(format!("gRPC export timed out after {timeout:?}")),
            }
        })
    }

    pub fn export_traces(&self, msg: ExportTraceServiceRequest) -> Result<(), String> {
        let req = self.request(msg);
        let gzip = self.gzip;
        self.run(|ch| async move {
            let mut client = TraceServiceClient::new(ch);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client.export(req).await
        })
    }

    pub fn export_metrics(&self, msg: ExportMetricsServiceRequest) -> Result<(), String> {
        let req = self.request(msg);
        let gzip = self.gzip;
        self.run(|ch| async move {
            let mut client = MetricsServiceClient::new(ch);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client.export(req).await
        })
    }

    pub fn target(&self) -> String {
        format!("OTLP/gRPC {}", self.endpoint)
    }
}
