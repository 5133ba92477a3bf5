//! Is this process's executable CPython?
//!
//! Decided from the file name of `/proc/self/exe` (the interpreter binary itself, symlinks
//! resolved: a venv's `bin/python` symlink or a pyenv shim, which is a shell script that execs the
//! real interpreter, both end up as the real binary). Accepted names:
//!
//! `python`, `python3`, `python3.<digits>`, each optionally followed by ABI-flag letters
//! `d` (debug build), `m` (pymalloc, Python < 3.8) or `t` (free-threaded build), e.g.
//! `python3.11`, `python3.13t`, `python3.12d`.
//!
//! Python 2 (`python2*`) and other implementations (`pypy*`) are not CPython 3 and are left alone;
//! an unversioned `python` that turns out to be Python 2 is handled by the bootstrap, which
//! declines to start on interpreters it does not support.

pub fn is_cpython_name(name: &[u8]) -> bool {
    let Some(mut rest) = name.strip_prefix(b"python") else {
        return false;
    };
    if let Some(r) = rest.strip_prefix(b"3") {
        rest = r;
        if let Some(r) = rest.strip_prefix(b".") {
            let digits = r.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return false;
            }
            rest = r.get(digits..).unwrap_or(&[]);
        }
    }
    rest.iter().all(|b| matches!(b, b'd' | b'm' | b't'))
}

/// The part of `path` after its last `/`.
pub fn basename(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => path.get(i + 1..).unwrap_or(&[]),
        None => path,
    }
}

/// The part of `path` before its last `/` (None if there is no `/`).
pub fn dirname(path: &[u8]) -> Option<&[u8]> {
    let i = path.iter().rposition(|&b| b == b'/')?;
    path.get(..i)
}
