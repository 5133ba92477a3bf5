//! The resource: who is sending. Built in the process that exports (after a fork, again in the
//! child, so `process.pid` is the worker's own).

use crate::config::Config;
use crate::span::{Attributes, Value};

/// Facts about the interpreter that only the Python side knows, passed in at start-up.
#[derive(Clone, Debug, Default)]
pub struct Runtime {
    pub name: String,
    pub version: String,
    pub description: String,
    pub executable: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resource {
    pub attributes: Attributes,
}

impl Resource {
    /// Detected attributes first; `OTEL_RESOURCE_ATTRIBUTES` overrides them key by key;
    /// `OTEL_SERVICE_NAME` overrides `service.name`.
    pub fn build(config: &Config, runtime: &Runtime) -> Self {
        let mut attrs: Attributes = vec![
            ("service.name".into(), Value::Str("unknown_service:python".into())),
            ("telemetry.sdk.name".into(), "ferrotel".into()),
            ("telemetry.sdk.language".into(), "python".into()),
            ("telemetry.sdk.version".into(), env!("CARGO_PKG_VERSION").into()),
            ("process.pid".into(), Value::Int(std::process::id() as i64)),
            ("process.runtime.name".into(), runtime.name.as_str().into()),
            ("process.runtime.version".into(), runtime.version.as_str().into()),
            ("process.runtime.description".into(), runtime.description.as_str().into()),
            ("process.executable.path".into(), runtime.executable.as_str().into()),
        ];
        if let Some(host) = hostname() {
            attrs.push(("host.name".into(), host.into()));
        }
        if let Some(id) = container_id() {
            attrs.push(("container.id".into(), id.into()));
        }
        attrs.retain(|(_, v)| !matches!(v, Value::Str(s) if s.is_empty()));
        let mut set = |k: String, v: String| match attrs.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = Value::Str(v.into()),
            None => attrs.push((k.into(), Value::Str(v.into()))),
        };
        for (k, v) in &config.resource_attributes {
            set(k.clone(), v.clone());
        }
        if let Some(name) = &config.service_name {
            set("service.name".into(), name.clone());
        }
        // One per process unless the user (or the Operator) chose one: a forked worker builds its
        // resource in its own export thread, so it gets its own id.
        if !attrs.iter().any(|(k, _)| k == "service.instance.id") {
            attrs.push(("service.instance.id".into(), Value::Str(uuid_v4().into())));
        }
        Resource { attributes: attrs }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

fn uuid_v4() -> String {
    let (a, b) = (crate::context::SpanId::random().0, crate::context::SpanId::random().0);
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&a);
    u[8..].copy_from_slice(&b);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The container id from `/proc/self/cgroup` (a 64-hex-digit path segment, as Docker,
/// containerd and CRI-O name them), when running in one.
fn container_id() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    container_id_from(&text)
}

fn container_id_from(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        line.rsplit('/').flat_map(|seg| seg.split(['-', '.', ':'])).find(|part| part.len() == 64 && part.bytes().all(|c| c.is_ascii_hexdigit())).map(str::to_string)
    })
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_values_override_detected_ones() {
        let cfg = Config::from_lookup(|k| match k {
            "OTEL_RESOURCE_ATTRIBUTES" => Some("service.name=from-attrs,k8s.pod.name=p,service.instance.id=ns.p.c".into()),
            "OTEL_SERVICE_NAME" => Some("from-name".into()),
            _ => None,
        });
        let rt = Runtime { name: "cpython".into(), version: "3.11.7".into(), ..Default::default() };
        let r = Resource::build(&cfg, &rt);
        assert_eq!(r.get("service.name"), Some(&Value::Str("from-name".into())));
        assert_eq!(r.get("k8s.pod.name"), Some(&Value::Str("p".into())));
        assert_eq!(r.get("service.instance.id"), Some(&Value::Str("ns.p.c".into())));
        assert_eq!(r.get("process.pid"), Some(&Value::Int(std::process::id() as i64)));
        assert_eq!(r.get("telemetry.sdk.name"), Some(&Value::Str("ferrotel".into())));
        assert!(r.get("process.executable.path").is_none(), "empty values are left out");
    }

    #[test]
    fn container_ids_and_instance_ids() {
        let id = "a".repeat(64);
        assert_eq!(container_id_from(&format!("0::/system.slice/docker-{id}.scope")), Some(id.clone()));
        assert_eq!(container_id_from(&format!("12:pids:/kubepods/besteffort/pod1/{id}")), Some(id));
        assert_eq!(container_id_from("0::/user.slice/session-3.scope"), None);
        let r = Resource::build(&Config::from_lookup(|_| None), &Runtime::default());
        let Some(Value::Str(a)) = r.get("service.instance.id") else { panic!("no instance id") };
        assert_eq!(a.len(), 36);
        let again = Resource::build(&Config::from_lookup(|_| None), &Runtime::default());
        assert_ne!(again.get("service.instance.id"), r.get("service.instance.id"));
    }

    #[test]
    fn default_service_name() {
        let r = Resource::build(&Config::from_lookup(|_| None), &Runtime::default());
        assert_eq!(r.get("service.name"), Some(&Value::Str("unknown_service:python".into())));
    }
}
