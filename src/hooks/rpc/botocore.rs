//! botocore (and so boto3): one CLIENT span per AWS API call (`semconv::aws`).
//!
//! The hook takes the place of `botocore.client.BaseClient._make_api_call(operation_name,
//! api_params)` (a `MethodHook`: no Python frame of the agent's), the one method every client
//! operation goes through, retries included (a call's retries are inside its span). Against
//! botocore's event system (`before-call`/`after-call`): one hook instead of two handlers looked
//! up by event name per call, and the span is current for the whole call, so:
//!
//! - the HTTP request botocore sends through urllib3 makes no span of its own and carries no
//!   propagation header: the span is a leaf (`Span::leaf`), and the urllib3 hook stays out under
//!   it. Nothing is added to the request, before or after botocore signs it, so the signature is
//!   never disturbed (and AWS services ignore W3C headers anyway: the AWS compatibility notes of
//!   the conventions name X-Ray as the only format they carry);
//! - nothing is injected into the call's parameters either (SQS message attributes, Lambda's
//!   client context): those are the application's data, counted against its limits and, for SQS,
//!   hashed into `MD5OfMessageAttributes`. The upstream botocore instrumentation does not inject
//!   into SQS messages either.
//!
//! What a client is (service id, region, endpoint) is read once per client object and kept in
//! its `__dict__` under `_ferrotel_aws` (clients are long-lived; those values do not change).
//! The result and the exception are the original's, unchanged; every native step fails open.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::agent;
use crate::context::TraceId;
use crate::hooks::capi;
use crate::hooks::current;
use crate::hooks::guard::quietly;
use crate::hooks::method::{Args, Around, MethodHook};
use crate::hooks::span::Span;
use crate::sampler::Sampler;
use crate::semconv::aws::{self, Service};
use crate::semconv::{self as sc, rpc};
use crate::span::{Family, Scope, SpanKind, SpanRecord, Text, Value};

#[pyclass(frozen, module = "ferrotel._native")]
pub struct BotocoreHook {
    scope: Scope,
}

#[pymethods]
impl BotocoreHook {
    #[new]
    fn new(scope: String) -> Self {
        // Hooks are made once per process: a leaked name makes every span's scope a borrow.
        BotocoreHook { scope: Scope::fixed(Box::leak(scope.into_boxed_str())) }
    }

    /// The hook to put in place of `BaseClient._make_api_call` (`original`).
    fn wrap<'py>(slf: &Bound<'py, Self>, original: Bound<'py, PyAny>) -> PyResult<Bound<'py, MethodHook>> {
        MethodHook::new(slf.py(), "_make_api_call", original, Box::new(BotocoreAround { hook: slf.clone().unbind() }))
    }
}

/// What one client object is, read once (`client.meta`).
#[pyclass(frozen, module = "ferrotel._native")]
pub struct AwsClient {
    service: String,
    kind: Service,
    region: Option<String>,
    host: Option<String>,
    port: Option<i64>,
}

struct BotocoreAround {
    hook: Py<BotocoreHook>,
}

impl Around for BotocoreAround {
    fn call<'py>(&self, original: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        if agent::get().is_none() {
            return args.call(original);
        }
        let Some((span, token)) = quietly("the botocore hook", || self.hook.get().start(args)).flatten() else {
            return args.call(original);
        };
        let result = args.call(original);
        current::exit(py, token);
        quietly("the botocore hook", || {
            finish(py, span.get(), &result);
            Ok(())
        });
        result
    }
}

fn text<'a>(v: &'a Bound<'_, PyAny>) -> Option<std::borrow::Cow<'a, str>> {
    capi::utf8(v.cast::<PyString>().ok()?)
}

fn owned(v: PyResult<Bound<'_, PyAny>>) -> Option<String> {
    v.ok().as_ref().and_then(|v| text(v)).map(|t| t.into_owned())
}

/// `mapping[key]` of a dict (None when absent or not a dict).
fn item<'py>(mapping: &Bound<'py, PyAny>, key: &Bound<'py, PyString>) -> Option<Bound<'py, PyAny>> {
    mapping.cast::<PyDict>().ok()?.get_item(key).ok().flatten()
}

impl BotocoreHook {
    fn start<'py>(&self, args: &Args<'_, 'py>) -> PyResult<Option<(Bound<'py, Span>, Option<Bound<'py, PyAny>>)>> {
        let py = args.py();
        let (Some(client), Some(operation)) = (args.get(0, "self"), args.get(1, "operation_name")) else { return Ok(None) };
        let Some(operation) = text(&operation).map(|t| t.into_owned()) else { return Ok(None) };
        let facts = client_facts(&client.to_owned())?;
        let facts = facts.get();
        let Some(agent) = agent::get() else { return Ok(None) };
        let parent = current::get(py);
        let parent_span = parent.as_ref().map(|p| p.get());
        let parent_ctx = parent_span.map(|s| &s.context);
        let baggage = parent_span.and_then(|s| s.baggage.clone());
        let trace_id = parent_ctx.map_or_else(TraceId::random, |p| p.trace_id);
        let head = agent.sampler.decide(parent_ctx, trace_id);
        let recording = agent.records(head);
        let mut rec = SpanRecord::start(aws::span_name(&facts.service, &operation), SpanKind::Client, self.scope.clone(), parent_ctx, trace_id, head);
        rec.family = Family::Rpc;
        if recording {
            rec.push(rpc::RPC_SYSTEM_NAME, Text::const_new(aws::AWS_API));
            rec.push(rpc::RPC_METHOD, aws::method(&facts.service, &operation));
            if let Some(region) = &facts.region {
                rec.push(aws::CLOUD_REGION, Text::from(region.as_str()));
            }
            if let Some(host) = &facts.host {
                rec.push(sc::SERVER_ADDRESS, Text::from(host.as_str()));
            }
            if let Some(port) = facts.port {
                rec.push(sc::SERVER_PORT, port);
            }
            if facts.kind != Service::Other {
                if let Some(params) = args.get(2, "api_params") {
                    parameters(py, &mut rec, facts.kind, &params.to_owned());
                }
            }
        }
        let span = Bound::new(py, Span::new(rec, baggage, recording, None).leaf())?;
        let token = current::enter(py, &span)?;
        Ok(Some((span, token)))
    }
}

/// The client's facts, from its `__dict__` or read now and kept there.
fn client_facts<'py>(client: &Bound<'py, PyAny>) -> PyResult<Bound<'py, AwsClient>> {
    let py = client.py();
    let key = intern!(py, "_ferrotel_aws");
    let dict = client.getattr(intern!(py, "__dict__")).ok().and_then(|d| d.cast_into::<PyDict>().ok());
    if let Some(found) = dict.as_ref().and_then(|d| d.get_item(key).ok().flatten()) {
        if let Ok(facts) = found.cast_into::<AwsClient>() {
            return Ok(facts);
        }
    }
    let meta = client.getattr(intern!(py, "meta"))?;
    let model = meta.getattr(intern!(py, "service_model"))?;
    let service = model.getattr(intern!(py, "service_id")).ok().map(|s| s.str().map(|s| s.to_string())).transpose()?;
    let service = match service.filter(|s| !s.is_empty()) {
        Some(s) => s,
        None => owned(model.getattr(intern!(py, "service_name"))).unwrap_or_else(|| "AWS".into()),
    };
    let region = owned(meta.getattr(intern!(py, "region_name"))).filter(|r| !r.is_empty());
    let endpoint = owned(meta.getattr(intern!(py, "endpoint_url")));
    let (host, port) = match endpoint.as_deref().and_then(sc::url_origin) {
        Some((scheme, host, port)) => (
            (!host.is_empty()).then(|| host.to_string()),
            port.or_else(|| sc::default_port(scheme)).map(i64::from),
        ),
        None => (None, None),
    };
    let facts = Bound::new(py, AwsClient { kind: Service::of(&service), service, region, host, port })?;
    if let Some(d) = dict {
        let _ = d.set_item(key, &facts);
    }
    Ok(facts)
}

/// The attributes the call's parameters name, per service.
fn parameters<'py>(py: Python<'py>, rec: &mut SpanRecord, kind: Service, params: &Bound<'py, PyAny>) {
    let Ok(params) = params.cast::<PyDict>() else { return };
    let get = |name: &Bound<'py, PyString>| -> Option<Bound<'py, PyAny>> { params.get_item(name).ok().flatten() };
    let put_text = |rec: &mut SpanRecord, attr: &'static str, v: Option<Bound<'_, PyAny>>| {
        if let Some(t) = v.as_ref().and_then(|v| text(v)) {
            rec.push(attr, Text::from(t.as_ref()));
        }
    };
    match kind {
        Service::S3 => {
            put_text(rec, aws::AWS_S3_BUCKET, get(intern!(py, "Bucket")));
            put_text(rec, aws::AWS_S3_KEY, get(intern!(py, "Key")));
            put_text(rec, aws::AWS_S3_UPLOAD_ID, get(intern!(py, "UploadId")));
            if let Some(n) = get(intern!(py, "PartNumber")).and_then(|n| n.extract::<i64>().ok()) {
                rec.push(aws::AWS_S3_PART_NUMBER, n);
            }
        }
        Service::Sqs => {
            if let Some(url) = get(intern!(py, "QueueUrl")) {
                if let Some(url) = text(&url) {
                    rec.push(aws::MESSAGING_SYSTEM, Text::const_new(aws::AWS_SQS));
                    if let Some(name) = aws::queue_name(&url) {
                        rec.push(aws::MESSAGING_DESTINATION_NAME, Text::from(name));
                    }
                    rec.push(aws::AWS_SQS_QUEUE_URL, Text::from(url.as_ref()));
                }
            }
        }
        Service::DynamoDb => {
            rec.push(aws::DB_SYSTEM_NAME, Text::const_new(aws::AWS_DYNAMODB));
            let mut tables = Vec::new();
            if let Some(t) = get(intern!(py, "TableName")).as_ref().and_then(|t| text(t)) {
                tables.push(t.into_owned());
            } else if let Some(items) = get(intern!(py, "RequestItems")) {
                if let Ok(items) = items.cast::<PyDict>() {
                    tables.extend(items.keys().iter().filter_map(|k| text(&k).map(|t| t.into_owned())));
                }
            }
            if !tables.is_empty() {
                rec.push(aws::AWS_DYNAMODB_TABLE_NAMES, Value::StrArray(tables));
            }
        }
        Service::Other => {}
    }
}

/// `ResponseMetadata` of a response (or of a `ClientError`'s `response`): request ids, status.
fn response_metadata(py: Python<'_>, response: &Bound<'_, PyAny>) -> (Option<String>, Option<String>, Option<i64>) {
    let Some(meta) = item(response, intern!(py, "ResponseMetadata")) else { return (None, None, None) };
    let request_id = item(&meta, intern!(py, "RequestId")).as_ref().and_then(|v| text(v)).map(|t| t.into_owned()).filter(|t| !t.is_empty());
    let host_id = item(&meta, intern!(py, "HostId")).as_ref().and_then(|v| text(v)).map(|t| t.into_owned()).filter(|t| !t.is_empty());
    let status = item(&meta, intern!(py, "HTTPStatusCode")).and_then(|v| v.extract::<i64>().ok());
    (request_id, host_id, status)
}

fn finish(py: Python<'_>, span: &Span, result: &PyResult<Bound<'_, PyAny>>) {
    match result {
        Ok(response) => {
            let (request_id, host_id, status) = response_metadata(py, response);
            span.end(|rec| {
                set_metadata(rec, request_id, host_id, status);
            });
        }
        Err(err) => {
            span.record_pyerr(py, err);
            let value = err.value(py);
            let response = value.getattr(intern!(py, "response")).ok().filter(|r| r.cast::<PyDict>().is_ok());
            let (meta, code) = match &response {
                Some(r) => {
                    let code = item(r, intern!(py, "Error")).and_then(|e| item(&e, intern!(py, "Code"))).as_ref().and_then(|c| text(c)).map(|t| t.into_owned());
                    (response_metadata(py, r), code)
                }
                None => ((None, None, None), None),
            };
            span.end(|rec| {
                let (request_id, host_id, status) = meta;
                set_metadata(rec, request_id, host_id, status);
                aws::fail_with_code(rec, code.as_deref());
            });
        }
    }
}

fn set_metadata(rec: &mut SpanRecord, request_id: Option<String>, host_id: Option<String>, status: Option<i64>) {
    if let Some(id) = request_id {
        rec.set(aws::AWS_REQUEST_ID, id);
    }
    if let Some(id) = host_id {
        rec.set(aws::AWS_EXTENDED_REQUEST_ID, id);
    }
    if let Some(code) = status {
        rec.set(sc::HTTP_RESPONSE_STATUS_CODE, code);
    }
}
