//! `FERROTEL_CONFIG`: an optional TOML file holding the same settings as the environment, one
//! key per variable (`OTEL_SERVICE_NAME = "shop"`, `FERROTEL_SLOW_THRESHOLD_MS = 250`,
//! `FERROTEL_SPAN_ATTRIBUTES = { team = "payments" }`, `FERROTEL_FILTER_ROUTES = ["/healthz"]`).
//! The environment wins over the file; the file wins over defaults.
//!
//! Why TOML: typed values without YAML's implicit conversions (`no` → false, `0755` → octal) or
//! indentation traps, one small well-kept parser crate, and the format Python itself reads
//! (`tomllib`) and Python projects already use (`pyproject.toml`).

use std::collections::HashMap;

/// Flatten the file into variable → value strings. Errors are returned as warning lines.
pub fn load(path: &str) -> (HashMap<String, String>, Vec<String>) {
    let mut warnings = Vec::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(format!("cannot read FERROTEL_CONFIG {path:?} ({e}); using the environment only"));
            return (HashMap::new(), warnings);
        }
    };
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let msg = e.to_string().lines().next().unwrap_or("").to_string();
            warnings.push(format!("cannot parse FERROTEL_CONFIG {path:?} ({msg}); using the environment only"));
            return (HashMap::new(), warnings);
        }
    };
    let mut out = HashMap::new();
    for (key, value) in table {
        if !(key.starts_with("OTEL_") || key.starts_with("FERROTEL_")) {
            warnings.push(format!("unknown setting {key:?} in FERROTEL_CONFIG; ignored"));
            continue;
        }
        match flatten(&value) {
            Some(v) => {
                out.insert(key, v);
            }
            None => warnings.push(format!("unsupported value for {key} in FERROTEL_CONFIG; ignored")),
        }
    }
    (out, warnings)
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flatten(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::Array(items) => Some(items.iter().map(scalar).collect::<Option<Vec<_>>>()?.join(",")),
        toml::Value::Table(t) => Some(t.iter().map(|(k, v)| Some(format!("{k}={}", scalar(v)?))).collect::<Option<Vec<_>>>()?.join(",")),
        other => scalar(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_tables_and_arrays() {
        let dir = std::env::temp_dir().join(format!("ferrotel-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "OTEL_SERVICE_NAME = \"shop\"\nFERROTEL_SLOW_THRESHOLD_MS = 250\nFERROTEL_FILTER_ROUTES = [\"/a\", \"/b\"]\n\
             FERROTEL_SPAN_ATTRIBUTES = { team = \"payments\" }\nbogus = 1\n",
        )
        .unwrap();
        let (map, warnings) = load(path.to_str().unwrap());
        assert_eq!(map["OTEL_SERVICE_NAME"], "shop");
        assert_eq!(map["FERROTEL_SLOW_THRESHOLD_MS"], "250");
        assert_eq!(map["FERROTEL_FILTER_ROUTES"], "/a,/b");
        assert_eq!(map["FERROTEL_SPAN_ATTRIBUTES"], "team=payments");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        std::fs::write(&path, "not toml = = =").unwrap();
        let (map, warnings) = load(path.to_str().unwrap());
        assert!(map.is_empty() && warnings.len() == 1);
        let (_, warnings) = load("/nonexistent/ferrotel.toml");
        assert_eq!(warnings.len(), 1);
    }
}
