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
        attrs.retain(|(_, v)| !matches!(v, Value::Str(s) if s.is_empty()));
        let mut set = |k: String, v: String| match attrs.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = Value::Str(v),
            None => attrs.push((k.into(), Value::Str(v))),
        };
        for (k, v) in &config.resource_attributes {
            set(k.clone(), v.clone());
        }
        if let Some(name) = &config.service_name {
            set("service.name".into(), name.clone());
        }
        Resource { attributes: attrs }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
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
    fn default_service_name() {
        let r = Resource::build(&Config::from_lookup(|_| None), &Runtime::default());
        assert_eq!(r.get("service.name"), Some(&Value::Str("unknown_service:python".into())));
    }
}
