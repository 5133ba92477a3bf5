//! Glob matching for the include/exclude knobs: `*` matches any run of bytes (including `/`), `?`
//! any single byte, everything else itself. Iterative (no recursion, no allocation), O(len²) at
//! worst.

pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where the last `*` was, and the text position it is currently assumed to have consumed to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match (pattern.get(p), text.get(t)) {
            (Some(b'*'), _) => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            (Some(&pc), Some(&tc)) if pc == b'?' || pc == tc => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while pattern.get(p) == Some(&b'*') {
        p += 1;
    }
    p == pattern.len()
}

/// Whether `text` matches any pattern of a comma-separated list (empty items are ignored).
pub fn matches_any(list: &[u8], text: &[u8]) -> bool {
    list.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()).any(|p| matches(p, text))
}

/// Whether a comma-separated list has at least one non-empty pattern.
pub fn has_patterns(list: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|p| !p.trim_ascii().is_empty())
}
