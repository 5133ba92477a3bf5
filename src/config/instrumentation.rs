//! Which library instrumentations run, in the pure-Python agent's words:
//! `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` (its entry-point names, `*` for all) and the URL
//! exclusions `OTEL_PYTHON_<NAME>_EXCLUDED_URLS`, falling back to `OTEL_PYTHON_EXCLUDED_URLS`
//! (comma-separated regular expressions, searched anywhere in the full URL, as upstream does),
//! for the HTTP clients' CLIENT spans and the servers' SERVER spans alike.

use super::reader::Reader;

/// The upstream names of the instrumentations that take excluded URLs, with their variable infix.
pub const CLIENTS: &[(&str, &str)] = &[
    ("urllib", "URLLIB"),
    ("urllib3", "URLLIB3"),
    ("requests", "REQUESTS"),
    ("httpx", "HTTPX"),
    ("aiohttp_client", "AIOHTTP_CLIENT"),
    ("aiohttp_server", "AIOHTTP_SERVER"),
];

/// The server instrumentations with a variable of their own, as upstream names them
/// (`OTEL_PYTHON_FLASK_EXCLUDED_URLS`, ...; the ASGI middleware's is `OTEL_PYTHON_ASGI_EXCLUDED_URLS`).
/// `wsgi` (`ferrotel.wsgi.Middleware`) has none upstream: it follows the generic list.
pub const SERVERS: &[(&str, &str)] = &[("flask", "FLASK"), ("django", "DJANGO"), ("fastapi", "FASTAPI"), ("starlette", "STARLETTE"), ("asgi", "ASGI")];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstrumentationConfig {
    /// Lower-cased names from `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`.
    pub disabled: Vec<String>,
    /// Excluded-URL regexes per client instrumentation name (the specific variable, else the
    /// generic one); instrumentations with none are absent.
    pub excluded_urls: Vec<(String, Vec<String>)>,
}

impl InstrumentationConfig {
    /// Whether the instrumentation called `name` (upstream's entry-point name) may run.
    pub fn enabled(&self, name: &str) -> bool {
        !self.disabled.iter().any(|d| d == "*" || d.eq_ignore_ascii_case(name))
    }

    /// The excluded-URL regexes for `name` (empty: nothing excluded).
    pub fn excluded_urls(&self, name: &str) -> &[String] {
        self.excluded_urls.iter().find(|(n, _)| n == name).map_or(&[], |(_, v)| v.as_slice())
    }
}

fn patterns(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

pub fn instrumentation(r: &mut Reader<'_>) -> InstrumentationConfig {
    let disabled = r
        .get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")
        .map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let generic = r.get("OTEL_PYTHON_EXCLUDED_URLS").map(|v| patterns(&v)).unwrap_or_default();
    let mut excluded_urls = Vec::new();
    if !generic.is_empty() {
        excluded_urls.push(("wsgi".to_string(), generic.clone()));
    }
    for (name, infix) in CLIENTS.iter().chain(SERVERS) {
        let list = match r.get(&format!("OTEL_PYTHON_{infix}_EXCLUDED_URLS")) {
            Some(v) => patterns(&v),
            None => generic.clone(),
        };
        if !list.is_empty() {
            excluded_urls.push((name.to_string(), list));
        }
    }
    InstrumentationConfig { disabled, excluded_urls }
}

#[cfg(test)]
mod tests {
    use super::super::Config;


    #[test]
    fn everything_is_enabled_by_default() {
        let c = Config::from_pairs(&[]).instrumentation;
        for name in ["urllib", "urllib3", "requests", "httpx", "flask"] {
            assert!(c.enabled(name));
            assert!(c.excluded_urls(name).is_empty());
        }
    }

    #[test]
    fn disabled_names_are_upstream_entry_point_names() {
        let c = Config::from_pairs(&[("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", " requests , HTTPX,")]).instrumentation;
        assert!(!c.enabled("requests") && !c.enabled("httpx"));
        assert!(c.enabled("urllib") && c.enabled("urllib3"));
        let all = Config::from_pairs(&[("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "*")]).instrumentation;
        assert!(!all.enabled("urllib") && !all.enabled("flask"));
    }

    #[test]
    fn excluded_urls_specific_over_generic() {
        let c = Config::from_pairs(&[
            ("OTEL_PYTHON_EXCLUDED_URLS", "healthz, client/.*/info"),
            ("OTEL_PYTHON_HTTPX_EXCLUDED_URLS", "only-httpx"),
        ])
        .instrumentation;
        assert_eq!(c.excluded_urls("urllib3"), ["healthz", "client/.*/info"]);
        assert_eq!(c.excluded_urls("requests"), ["healthz", "client/.*/info"]);
        assert_eq!(c.excluded_urls("httpx"), ["only-httpx"]);
        let c = Config::from_pairs(&[("OTEL_PYTHON_URLLIB_EXCLUDED_URLS", "x")]).instrumentation;
        assert_eq!(c.excluded_urls("urllib"), ["x"]);
        assert!(c.excluded_urls("urllib3").is_empty());
    }

    #[test]
    fn servers_have_excluded_urls_too() {
        let c = Config::from_pairs(&[("OTEL_PYTHON_EXCLUDED_URLS", "healthz"), ("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "ping,/x$")]).instrumentation;
        assert_eq!(c.excluded_urls("flask"), ["ping", "/x$"]);
        for name in ["django", "fastapi", "starlette", "asgi", "wsgi"] {
            assert_eq!(c.excluded_urls(name), ["healthz"], "{name}");
        }
        let c = Config::from_pairs(&[("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "admin")]).instrumentation;
        assert_eq!(c.excluded_urls("django"), ["admin"]);
        assert!(c.excluded_urls("flask").is_empty() && c.excluded_urls("wsgi").is_empty());
    }
}
