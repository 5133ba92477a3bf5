//! Redaction: values of sensitive query-string keys (in `url.query` and `url.full`), user info in
//! `url.full`, and captured header values whose names are sensitive become `REDACTED`, before
//! anything leaves the process.

use super::{DropReason, SpanProcessor};
use crate::config::{percent_decode, ProcessingConfig};
use crate::span::{SpanRecord, Value};

pub const MASK: &str = "REDACTED";

pub struct Redact {
    query_keys: Vec<String>,
    headers: Vec<String>,
}

impl Redact {
    pub fn new(c: &ProcessingConfig) -> Self {
        Redact { query_keys: c.redact_query_keys.clone(), headers: c.redact_headers.clone() }
    }

    fn sensitive_key(&self, raw_key: &str) -> bool {
        let key = percent_decode(&raw_key.replace('+', " ")).unwrap_or_else(|| raw_key.to_string()).to_ascii_lowercase();
        self.query_keys.iter().any(|k| *k == key)
    }

    /// Mask the values of sensitive keys in a query string, keeping everything else as sent.
    pub fn query(&self, query: &str) -> Option<String> {
        let mut changed = false;
        let parts: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if !v.is_empty() && self.sensitive_key(k) => {
                    changed = true;
                    format!("{k}={MASK}")
                }
                _ => pair.to_string(),
            })
            .collect();
        changed.then(|| parts.join("&"))
    }

    fn url(&self, url: &str) -> Option<String> {
        let (mut base, fragment) = match url.split_once('#') {
            Some((b, f)) => (b.to_string(), Some(f)),
            None => (url.to_string(), None),
        };
        let mut changed = false;
        // user:password@ in the authority
        if let Some(scheme_end) = base.find("://") {
            let auth_start = scheme_end + 3;
            let auth_end = base[auth_start..].find(['/', '?']).map_or(base.len(), |i| auth_start + i);
            if let Some(at) = base[auth_start..auth_end].rfind('@') {
                base.replace_range(auth_start..auth_start + at, &format!("{MASK}:{MASK}"));
                changed = true;
            }
        }
        if let Some(q) = base.find('?') {
            if let Some(masked) = self.query(&base[q + 1..]) {
                base.truncate(q + 1);
                base.push_str(&masked);
                changed = true;
            }
        }
        changed.then(|| match fragment {
            Some(f) => format!("{base}#{f}"),
            None => base,
        })
    }
}

impl SpanProcessor for Redact {
    fn process(&self, span: &mut SpanRecord) -> Result<(), DropReason> {
        for (key, value) in span.attributes.iter_mut() {
            let Value::Str(s) = value else {
                if let Value::StrArray(items) = value {
                    if let Some(name) = key.strip_prefix("http.request.header.").or_else(|| key.strip_prefix("http.response.header.")) {
                        if self.headers.iter().any(|h| h == name) {
                            items.iter_mut().for_each(|i| *i = MASK.to_string());
                        }
                    }
                }
                continue;
            };
            let masked = match key.as_ref() {
                "url.query" => self.query(s),
                "url.full" => self.url(s),
                _ => None,
            };
            if let Some(m) = masked {
                *s = m.into();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::test_support::{config, server_span};

    #[test]
    fn masks_query_values_and_urls() {
        let r = Redact::new(&config(&[]));
        assert_eq!(r.query("a=1&token=abc&Password=x&sig=").as_deref(), Some("a=1&token=REDACTED&Password=REDACTED&sig="));
        assert_eq!(r.query("a=1&b=2"), None);
        assert_eq!(r.query("api%5Fkey=zzz").as_deref(), Some("api%5Fkey=REDACTED"));
        assert_eq!(
            r.url("https://user:pw@host:8443/p?X-Goog-Signature=s&q=1#frag").as_deref(),
            Some("https://REDACTED:REDACTED@host:8443/p?X-Goog-Signature=REDACTED&q=1#frag")
        );
        assert_eq!(r.url("http://host/p?q=1"), None);
    }

    #[test]
    fn masks_span_attributes() {
        let r = Redact::new(&config(&[]));
        let mut s = server_span("/x", 1);
        s.set("url.query", "token=secret123&page=2");
        s.set("http.request.header.authorization", Value::StrArray(vec!["Bearer secret123".into()]));
        s.set("http.request.header.x-request-id", Value::StrArray(vec!["id-1".into()]));
        r.process(&mut s).unwrap();
        assert_eq!(s.get("url.query"), Some(&Value::Str("token=REDACTED&page=2".into())));
        assert_eq!(s.get("http.request.header.authorization"), Some(&Value::StrArray(vec!["REDACTED".into()])));
        assert_eq!(s.get("http.request.header.x-request-id"), Some(&Value::StrArray(vec!["id-1".into()])));
    }
}
