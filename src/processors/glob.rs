//! Shell-style globs for routes, paths and values: `*` any run of characters (slashes
//! included), `?` one character; everything else literal.

pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("/healthz", "/healthz"));
        assert!(!matches("/healthz", "/healthz/deep"));
        assert!(matches("/reports/*", "/reports/2024/q1"));
        assert!(matches("*probe*", "kube-probe/1.29"));
        assert!(matches("/u?ers", "/users"));
        assert!(!matches("/a*b", "/acd"));
        assert!(matches("*", ""));
    }
}
