//! One pass over `/proc/self/maps` finds two things:
//! - the file this library was loaded from (the mapping that contains one of its own functions);
//! - the C library the process uses, with every mapping of it, so that its ELF structures can be
//!   read from memory with each access checked against what is actually mapped readable.
//!
//! The C library is recognised by file name: glibc's `libc.so.6` (or `libc-2.NN.so` on glibc
//! before 2.34, where `libc.so.6` is a symlink that the maps show resolved), musl's
//! `ld-musl-<arch>.so.1` or `libc.musl-<arch>.so.1`; and, whatever its name, the program
//! interpreter at AT_BASE is a second candidate, because musl's C library *is* its dynamic loader.

use crate::buf::Buf;
use crate::python::basename;

pub const PATH_CAP: usize = 4096;
const LINE_CAP: usize = PATH_CAP + 160;
pub const MAX_RANGES: usize = 32;

#[derive(Clone, Copy, Default)]
pub struct Range {
    pub start: usize,
    pub end: usize,
    pub readable: bool,
    pub executable: bool,
}

pub struct Maps {
    pub info: MapsInfo,
    line: Buf<LINE_CAP>,
}

/// One mapped library: its path and every mapping of it.
pub struct Lib {
    pub path: Buf<PATH_CAP>,
    ranges: [Range; MAX_RANGES],
    count: usize,
    /// Too many mappings to record: do not trust the ranges.
    pub overflowed: bool,
    /// Start of the mapping at file offset 0 (its ELF header).
    pub header: Option<usize>,
}

impl Lib {
    const fn new() -> Self {
        Lib {
            path: Buf::new(),
            ranges: [Range { start: 0, end: 0, readable: false, executable: false }; MAX_RANGES],
            count: 0,
            overflowed: false,
            header: None,
        }
    }

    pub fn ranges(&self) -> &[Range] {
        self.ranges.get(..self.count).unwrap_or(&[])
    }

    pub fn found(&self) -> bool {
        !self.path.as_bytes().is_empty()
    }

    fn add(&mut self, entry: &Entry<'_>) {
        if entry.offset == 0 && self.header.is_none() {
            self.header = Some(entry.start);
        }
        match self.ranges.get_mut(self.count) {
            Some(slot) => {
                *slot = Range {
                    start: entry.start,
                    end: entry.end,
                    readable: entry.readable,
                    executable: entry.executable,
                };
                self.count += 1;
            }
            None => self.overflowed = true,
        }
    }
}

pub struct MapsInfo {
    /// Address inside this library (to find our own mapping).
    own_addr: usize,
    /// AT_BASE: where the program interpreter (dynamic loader) is mapped; 0 if unknown.
    interp_base: usize,
    pub own_path: Buf<PATH_CAP>,
    /// The first mapped file named like a C library.
    pub named: Lib,
    /// The program interpreter: for musl, that is the C library (whatever its file name, e.g.
    /// Debian's /usr/lib/x86_64-linux-musl/libc.so); for glibc it is ld-linux, which has no
    /// getenv/setenv, so the lookup there simply fails.
    pub interp: Lib,
}

impl Maps {
    pub const fn new() -> Self {
        Maps { info: MapsInfo::new(), line: Buf::new() }
    }

    fn feed(&mut self, data: &[u8]) {
        for &byte in data {
            if byte == b'\n' {
                if !self.line.overflowed() {
                    self.info.line_done(self.line.as_bytes());
                }
                self.line.clear();
            } else {
                self.line.push(byte);
            }
        }
    }
}

impl MapsInfo {
    pub const fn new() -> Self {
        MapsInfo { own_addr: 0, interp_base: 0, own_path: Buf::new(), named: Lib::new(), interp: Lib::new() }
    }

    fn line_done(&mut self, line: &[u8]) {
        let Some(entry) = parse_line(line) else {
            return;
        };
        if entry.start <= self.own_addr && self.own_addr < entry.end && self.own_path.as_bytes().is_empty() {
            self.own_path.extend(entry.path);
        }
        if !entry.path.starts_with(b"/") {
            return;
        }
        if self.interp_base != 0 {
            if !self.interp.found() && entry.start == self.interp_base && entry.offset == 0 {
                self.interp.path.extend(entry.path);
            }
            if self.interp.found() && self.interp.path.as_bytes() == entry.path {
                self.interp.add(&entry);
            }
        }
        if is_libc_name(basename(entry.path)) {
            if !self.named.found() {
                self.named.path.extend(entry.path);
            }
            // A second, differently named C library is ignored: the first one (lowest address) is used.
            if self.named.path.as_bytes() == entry.path {
                self.named.add(&entry);
            }
        }
    }
}

/// Reads `/proc/self/maps`; `own_addr` is an address inside this library, `interp_base` the
/// AT_BASE auxiliary vector entry (0 if none).
pub fn read(maps: &mut Maps, own_addr: usize, interp_base: usize, chunk: &mut [u8]) -> bool {
    maps.info.own_addr = own_addr;
    maps.info.interp_base = interp_base;
    crate::sys::read_file(b"/proc/self/maps\0", chunk, |data| maps.feed(data))
}

pub fn is_libc_name(name: &[u8]) -> bool {
    name == b"libc.so.6"
        || (name.starts_with(b"libc-") && name.ends_with(b".so"))
        || name.starts_with(b"ld-musl-")
        || name.starts_with(b"libc.musl-")
}

struct Entry<'a> {
    start: usize,
    end: usize,
    readable: bool,
    executable: bool,
    offset: usize,
    path: &'a [u8],
}

/// `start-end perms offset dev inode   path` (path may be empty or a pseudo-name like `[heap]`).
fn parse_line(line: &[u8]) -> Option<Entry<'_>> {
    let mut fields = Fields { rest: line };
    let range = fields.next()?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    let path = fields.rest.trim_ascii_start();
    let dash = range.iter().position(|&b| b == b'-')?;
    let start = parse_hex(range.get(..dash)?)?;
    let end = parse_hex(range.get(dash + 1..)?)?;
    Some(Entry {
        start,
        end,
        readable: perms.first() == Some(&b'r'),
        executable: perms.get(2) == Some(&b'x'),
        offset: parse_hex(offset)?,
        path,
    })
}

struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.rest.trim_ascii_start();
        let len = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
        let (field, rest) = s.split_at_checked(len)?;
        self.rest = rest;
        if field.is_empty() { None } else { Some(field) }
    }
}

fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v: usize = 0;
    for &b in s {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        v = v.checked_mul(16)?.checked_add(d as usize)?;
    }
    Some(v)
}
