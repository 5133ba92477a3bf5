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
    let table = parse(path, &text, &mut warnings);
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

/// Parse the file. A line TOML rejects is named (number and text) with the fix, and left out:
/// the rest of the file still applies (an unquoted `OTEL_TRACES_SAMPLER = always_on` used to cost
/// the whole file).
fn parse(path: &str, text: &str, warnings: &mut Vec<String>) -> toml::Table {
    let mut lines: Vec<&str> = text.split('\n').collect();
    // Each round leaves out one more line; a file with this many bad lines is given up on.
    for _ in 0..16 {
        let current = lines.join("\n");
        let err = match current.parse::<toml::Table>() {
            Ok(table) => return table,
            Err(e) => e,
        };
        let line_no = err.span().map(|r| current[..r.start.min(current.len())].matches('\n').count());
        let Some(n) = line_no.filter(|&n| n < lines.len() && !lines[n].trim().is_empty()) else {
            let msg = err.message().trim().to_string();
            warnings.push(format!("cannot parse FERROTEL_CONFIG {path:?} ({msg}); the file is ignored, using the environment only"));
            return toml::Table::new();
        };
        let line = lines[n].trim();
        warnings.push(format!(
            "FERROTEL_CONFIG {path:?} line {}: `{line}` is not valid TOML ({}); {}; this line is ignored",
            n + 1,
            err.message().trim().trim_end_matches('.'),
            fix(line)
        ));
        lines[n] = "";
    }
    warnings.push(format!("cannot parse FERROTEL_CONFIG {path:?} (too many errors); the file is ignored, using the environment only"));
    toml::Table::new()
}

/// How to write `line` in TOML, for the usual mistake (text without quotes), else the rules.
fn fix(line: &str) -> String {
    const RULES: &str = "write `NAME = \"text\"`, `NAME = 250`, `NAME = true`, `NAME = [\"a\", \"b\"]` or `NAME = { key = \"value\" }`";
    let Some((key, value)) = line.split_once('=') else { return RULES.into() };
    let (key, value) = (key.trim(), value.split(" #").next().unwrap_or("").trim());
    let bare = !value.is_empty() && !value.starts_with(['"', '\'', '[', '{']) && !value.contains('"');
    if bare && !key.is_empty() && !key.contains(char::is_whitespace) {
        format!("text values need quotes: `{key} = \"{value}\"`")
    } else {
        RULES.into()
    }
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
        assert!(warnings[0].contains("line 1: `not toml = = =`"), "{warnings:?}");
        let (_, warnings) = load("/nonexistent/ferrotel.toml");
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn an_unquoted_value_names_its_line_and_the_fix_and_the_rest_applies() {
        let dir = std::env::temp_dir().join(format!("ferrotel-cfg-bare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "OTEL_SERVICE_NAME = \"shop\"\nOTEL_TRACES_SAMPLER = always_on\nFERROTEL_SLOW_THRESHOLD_MS = 250\n").unwrap();
        let (map, warnings) = load(path.to_str().unwrap());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let w = &warnings[0];
        assert!(w.contains("line 2: `OTEL_TRACES_SAMPLER = always_on`"), "{w}");
        assert!(w.contains("text values need quotes: `OTEL_TRACES_SAMPLER = \"always_on\"`"), "{w}");
        assert_eq!(map.get("OTEL_SERVICE_NAME").map(String::as_str), Some("shop"));
        assert_eq!(map.get("FERROTEL_SLOW_THRESHOLD_MS").map(String::as_str), Some("250"));
        assert!(!map.contains_key("OTEL_TRACES_SAMPLER"));
    }

    #[test]
    fn the_shipped_example_loads_without_a_warning() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/python/ferrotel/config.example.toml");
        let (map, warnings) = load(path);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(map.get("OTEL_SERVICE_NAME").map(String::as_str), Some("shop"));
        // Every value the example sets is one the configuration accepts: no warning either.
        let config = crate::config::Config::from_lookup(|k| map.get(k).cloned());
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }
}
