//! Typed reads of configuration values with the "warn once, use the default" rule.

use std::time::Duration;

pub(super) struct Reader<'a> {
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    pub warnings: Vec<String>,
}

impl Reader<'_> {
    /// The trimmed value; empty counts as unset (the specification's rule).
    pub fn get(&self, key: &str) -> Option<String> {
        (self.lookup)(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// The first of `keys` that is set (signal-specific before generic), with its name.
    pub fn first(&self, keys: &[&str]) -> Option<(String, String)> {
        keys.iter().find_map(|k| self.get(k).map(|v| (k.to_string(), v)))
    }

    pub fn warn(&mut self, key: &str, value: &str, default: impl std::fmt::Display) {
        self.warnings.push(format!("invalid value {value:?} for {key}; using {default}"));
    }

    pub fn bool(&mut self, key: &str, default: bool) -> bool {
        self.first_bool(&[key], default)
    }

    /// `true` / `false` from the first of `keys` that is set (signal-specific before generic).
    pub fn first_bool(&mut self, keys: &[&str], default: bool) -> bool {
        match self.first(keys) {
            None => default,
            Some((_, v)) if v.eq_ignore_ascii_case("true") => true,
            Some((_, v)) if v.eq_ignore_ascii_case("false") => false,
            Some((k, v)) => {
                self.warn(&k, &v, default);
                default
            }
        }
    }

    /// A non-negative whole number of milliseconds.
    pub fn millis(&mut self, keys: &[&str], default_ms: u64) -> Duration {
        match self.first(keys) {
            None => Duration::from_millis(default_ms),
            Some((k, v)) => match parse_millis(&v) {
                Some(d) => d,
                None => {
                    self.warn(&k, &v, format!("{default_ms} ms"));
                    Duration::from_millis(default_ms)
                }
            },
        }
    }

    pub fn positive(&mut self, key: &str, default: usize) -> usize {
        match self.get(key) {
            None => default,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    self.warn(key, &v, default);
                    default
                }
            },
        }
    }

    pub fn port(&mut self, key: &str, default: u16) -> u16 {
        match self.get(key) {
            None => default,
            Some(v) => match v.parse::<u16>() {
                Ok(p) => p,
                Err(_) => {
                    self.warn(key, &v, default);
                    default
                }
            },
        }
    }

    /// A comma-separated list; `None` when unset, `Some([])` for the word `none`.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        let raw = self.get(key)?;
        if raw.eq_ignore_ascii_case("none") {
            return Some(Vec::new());
        }
        Some(raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
    }


    /// `k=v,k2=v2` with percent-decoded values; bad pairs are reported and skipped.
    pub fn pairs(&mut self, key: &str) -> Vec<(String, String)> {
        let Some(raw) = self.get(key) else { return Vec::new() };
        let mut out = Vec::new();
        for pair in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match pair.split_once('=').and_then(|(k, v)| Some((k.trim().to_string(), percent_decode(v.trim())?))) {
                Some((k, v)) if !k.is_empty() => out.push((k, v)),
                _ => self.warn(key, pair, "the other entries without it"),
            }
        }
        out
    }
}

pub fn parse_millis(v: &str) -> Option<Duration> {
    v.parse::<u64>().ok().map(Duration::from_millis)
}

/// `%XX` decoding (UTF-8). `None` on a malformed escape or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
