//! Diagnostics: one line per message, written to stderr (fd 2) with a single `write` system call.
//!
//! `FERROTEL_PRELOAD_LOG_LEVEL`: `none`, `error` (the default), `info` or `debug`. Nothing is
//! ever written for a process that is not CPython, whatever the level.

use crate::buf::Buf;
use crate::sys;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None = 0,
    Error = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    pub fn parse(value: &[u8]) -> Option<Level> {
        let v = value.trim_ascii();
        if v.eq_ignore_ascii_case(b"none") || v.eq_ignore_ascii_case(b"off") {
            Some(Level::None)
        } else if v.eq_ignore_ascii_case(b"error") {
            Some(Level::Error)
        } else if v.eq_ignore_ascii_case(b"info") {
            Some(Level::Info)
        } else if v.eq_ignore_ascii_case(b"debug") {
            Some(Level::Debug)
        } else {
            None
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Level::None => b"",
            Level::Error => b"error",
            Level::Info => b"info",
            Level::Debug => b"debug",
        }
    }
}

pub struct Logger {
    pub level: Level,
}

impl Logger {
    pub fn enabled(&self, level: Level) -> bool {
        level != Level::None && level <= self.level
    }

    /// Writes `ferrotel-preload[<pid>]: <level>: <parts...>` and a newline (long lines are cut).
    pub fn log(&self, level: Level, parts: &[&[u8]]) {
        if !self.enabled(level) {
            return;
        }
        let mut line = Buf::<1024>::new();
        line.extend(b"ferrotel-preload[");
        line.push_decimal(sys::getpid().max(0) as u64);
        line.extend(b"]: ");
        line.extend(level.label());
        line.extend(b": ");
        for part in parts {
            line.extend(part);
        }
        if line.overflowed() || !line.push(b'\n') {
            // keep room for the newline
            let mut cut = Buf::<1024>::new();
            cut.extend(line.as_bytes().get(..1019).unwrap_or(&[]));
            cut.extend(b"...\n");
            sys::write_all(2, cut.as_bytes());
        } else {
            sys::write_all(2, line.as_bytes());
        }
    }
}
