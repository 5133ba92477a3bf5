//! OTLP/gRPC transport over tonic. tonic needs a tokio runtime; this transport owns a
//! current-thread one, created on the export thread of the process that uses it (a runtime does
//! not survive fork, so a forked worker builds its own).

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};

use super::retry::{self, Retry};
use super::tls;
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
            let mut endpoint = Endpoint::from_shared(c.endpoint.clone()).map_err(|e| e.to_string())?.connect_timeout(c.timeout).timeout(c.timeout);
            if c.endpoint.starts_with("https://") {
                endpoint = endpoint.tls_config(tls_config(c)?).map_err(|e| format!("TLS setup failed: {e}"))?;
            }
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

    fn request<T>(&self, msg: T, timeout: Duration) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(timeout);
        for (k, v) in &self.headers {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        req
    }

    /// One export call, retried on the codes the OTLP spec calls transient (see `retry`). `call`
    /// builds the call afresh for each attempt.
    fn run<F, R>(&self, call: impl Fn(Channel, Duration) -> F) -> Result<(), String>
    where
        F: std::future::Future<Output = Result<R, tonic::Status>>,
    {
        let (rt, channel) = self.state.as_ref().map_err(|e| e.clone())?;
        // One deadline for the export and its retries; each attempt gets what is left of it.
        let mut retry = Retry::new(self.timeout);
        loop {
            let timeout = retry.remaining();
            let outcome = rt.block_on(async { tokio::time::timeout(timeout, call(channel.clone(), timeout)).await });
            let (error, retry_delay) = match outcome {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(status)) => {
                    if let Some(t) = tls::failure(&status) {
                        return Err(format!("TLS: {t} (not retried)"));
                    }
                    let why = reason(&status);
                    let delay = retry::grpc_retry_delay(status.details());
                    if !retryable(status.code(), delay.is_some()) {
                        return Err(format!("gRPC {:?} (not retryable): {why}", status.code()));
                    }
                    (format!("gRPC {:?}: {why}", status.code()), delay)
                }
                Err(_) => (format!("gRPC export timed out after {timeout:?}"), None),
            };
            match retry.next(retry_delay) {
                Some(wait) => std::thread::sleep(wait),
                None => return Err(error),
            }
        }
    }

    /// Send an `ExportTraceServiceRequest` already encoded to protobuf bytes (`otlp_wire`): the
    /// same unary call the generated client makes, with a codec that writes the bytes as they are.
    pub fn export_traces(&self, encoded: Vec<u8>) -> Result<(), String> {
        let gzip = self.gzip;
        self.run(|ch, timeout| {
            let req = self.request(Encoded(encoded.clone()), timeout);
            async move {
                let mut grpc = tonic::client::Grpc::new(ch);
                if gzip {
                    grpc = grpc.send_compressed(CompressionEncoding::Gzip);
                }
                grpc.ready().await.map_err(|e| {
                    let mut status = tonic::Status::unavailable(e.to_string());
                    status.set_source(std::sync::Arc::new(e)); // keeps the cause (a TLS failure) findable
                    status
                })?;
                let codec = tonic_prost::ProstCodec::<Encoded, ExportTraceServiceResponse>::default();
                let path = PathAndQuery::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
                grpc.unary(req, path, codec).await
            }
        })
    }

    pub fn export_metrics(&self, msg: ExportMetricsServiceRequest) -> Result<(), String> {
        let gzip = self.gzip;
        self.run(|ch, timeout| {
            let req = self.request(msg.clone(), timeout);
            async move {
                let mut client = MetricsServiceClient::new(ch);
                if gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                client.export(req).await
            }
        })
    }

    /// Send an `ExportLogsServiceRequest` already encoded (`otlp_wire::encode_logs`), as
    /// `export_traces` does.
    pub fn export_logs(&self, encoded: Vec<u8>) -> Result<(), String> {
        let gzip = self.gzip;
        self.run(|ch, timeout| {
            let req = self.request(Encoded(encoded.clone()), timeout);
            async move {
                let mut grpc = tonic::client::Grpc::new(ch);
                if gzip {
                    grpc = grpc.send_compressed(CompressionEncoding::Gzip);
                }
                grpc.ready().await.map_err(|e| {
                    let mut status = tonic::Status::unavailable(e.to_string());
                    status.set_source(std::sync::Arc::new(e));
                    status
                })?;
                let codec = tonic_prost::ProstCodec::<Encoded, ExportLogsServiceResponse>::default();
                let path = PathAndQuery::from_static("/opentelemetry.proto.collector.logs.v1.LogsService/Export");
                grpc.unary(req, path, codec).await
            }
        })
    }

    pub fn target(&self) -> String {
        format!("OTLP/gRPC {}", self.endpoint)
    }
}

/// TLS for an `https` endpoint: the configured (or system) trust anchors, the client identity
/// for mTLS; tonic takes the server name from the endpoint.
fn tls_config(c: &OtlpConfig) -> Result<ClientTlsConfig, String> {
    let m = tls::load(&c.tls).map_err(|e| format!("TLS setup failed: {e}"))?;
    let mut config = ClientTlsConfig::new().trust_anchors(m.roots.roots).timeout(c.timeout);
    if let Some(id) = m.client {
        config = config.identity(Identity::from_pem(id.cert_pem, id.key_pem));
    }
    Ok(config)
}

/// The status message and its causes (`transport error: ...: received fatal alert: ...`).
fn reason(status: &tonic::Status) -> String {
    let message = status.message();
    match std::error::Error::source(status).map(tls::describe) {
        Some(causes) if causes.contains(message) => causes,
        Some(causes) => format!("{message}: {causes}"),
        None => message.to_string(),
    }
}

/// The status codes the OTLP/gRPC specification lists as retryable. RESOURCE_EXHAUSTED only
/// when the collector says recovery is possible by sending a `RetryInfo` (its throttling signal).
fn retryable(code: tonic::Code, has_retry_info: bool) -> bool {
    use tonic::Code::*;
    match code {
        ResourceExhausted => has_retry_info,
        code => matches!(code, Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss),
    }
}

/// A protobuf message that is already bytes: encodes as itself; decoding skips everything (it is
/// only ever sent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Encoded(pub Vec<u8>);

impl prost::Message for Encoded {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(&mut self, tag: u32, wire_type: WireType, buf: &mut impl Buf, ctx: DecodeContext) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}
