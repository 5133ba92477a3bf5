//! Reads the variables the constructor cares about from `/proc/self/environ` (the environment the
//! process was started with, `NAME=VALUE` entries separated by NUL bytes), streaming it through a
//! small chunk buffer so that no size limit applies to the environment as a whole.
//!
//! As `getenv` does, the first entry of a name wins.

use crate::buf::Buf;

/// One captured variable: whether it is present, and its value (truncation is recorded).
pub struct Var<const N: usize> {
    pub present: bool,
    pub value: Buf<N>,
}

impl<const N: usize> Var<N> {
    pub const fn new() -> Self {
        Var { present: false, value: Buf::new() }
    }

    /// The value, if the variable is present and its value fit.
    pub fn get(&self) -> Option<&[u8]> {
        if self.present && !self.value.overflowed() { Some(self.value.as_bytes()) } else { None }
    }

    pub fn truncated(&self) -> bool {
        self.present && self.value.overflowed()
    }
}

pub const PATTERN_CAP: usize = 4096;
pub const FLAG_CAP: usize = 64;

pub struct Knobs {
    pub disabled: Var<FLAG_CAP>,
    pub include: Var<PATTERN_CAP>,
    pub exclude: Var<PATTERN_CAP>,
    pub log_level: Var<FLAG_CAP>,
    pub otel_sdk_disabled: Var<FLAG_CAP>,
}

pub const DISABLED: &[u8] = b"FERROTEL_PRELOAD_DISABLED";
pub const INCLUDE: &[u8] = b"FERROTEL_PRELOAD_INCLUDE";
pub const EXCLUDE: &[u8] = b"FERROTEL_PRELOAD_EXCLUDE";
pub const LOG_LEVEL: &[u8] = b"FERROTEL_PRELOAD_LOG_LEVEL";
pub const OTEL_SDK_DISABLED: &[u8] = b"OTEL_SDK_DISABLED";

/// Longest variable name worth comparing (longer names are none of ours).
const NAME_CAP: usize = 64;

impl Knobs {
    pub const fn new() -> Self {
        // All zero, so that the working memory this is part of lands in .bss.
        Knobs {
            disabled: Var::new(),
            include: Var::new(),
            exclude: Var::new(),
            log_level: Var::new(),
            otel_sdk_disabled: Var::new(),
        }
    }
}

/// Incremental parser state across chunks.
pub struct Parser {
    name: Buf<NAME_CAP>,
    /// Which variable the current entry's value goes to (index into the list), if any.
    target: Option<usize>,
    in_value: bool,
}

impl Parser {
    pub const fn new() -> Self {
        Parser { name: Buf::new(), target: None, in_value: false }
    }

    pub fn feed(&mut self, knobs: &mut Knobs, data: &[u8]) {
        for &byte in data {
            if byte == 0 {
                // End of an entry (an entry without '=' is ignored, as libc ignores it).
                self.name.clear();
                self.target = None;
                self.in_value = false;
                continue;
            }
            if self.in_value {
                if let Some(index) = self.target {
                    push_value(knobs, index, byte);
                }
                continue;
            }
            if byte == b'=' {
                self.in_value = true;
                self.target = if self.name.overflowed() { None } else { claim(knobs, self.name.as_bytes()) };
                continue;
            }
            self.name.push(byte);
        }
    }
}

/// The index of the not yet seen variable called `name`, marking it present.
fn claim(knobs: &mut Knobs, name: &[u8]) -> Option<usize> {
    macro_rules! try_var {
        ($index:expr, $var:expr, $name:expr) => {
            if !$var.present && $name == name {
                $var.present = true;
                return Some($index);
            }
        };
    }
    try_var!(0, knobs.disabled, DISABLED);
    try_var!(1, knobs.include, INCLUDE);
    try_var!(2, knobs.exclude, EXCLUDE);
    try_var!(3, knobs.log_level, LOG_LEVEL);
    try_var!(4, knobs.otel_sdk_disabled, OTEL_SDK_DISABLED);
    None
}

fn push_value(knobs: &mut Knobs, index: usize, byte: u8) {
    match index {
        0 => knobs.disabled.value.push(byte),
        1 => knobs.include.value.push(byte),
        2 => knobs.exclude.value.push(byte),
        3 => knobs.log_level.value.push(byte),
        4 => knobs.otel_sdk_disabled.value.push(byte),
        _ => false,
    };
}

/// Fills `knobs` from `/proc/self/environ`; false if it cannot be read.
pub fn read(knobs: &mut Knobs, chunk: &mut [u8]) -> bool {
    let mut parser = Parser::new();
    crate::sys::read_file(b"/proc/self/environ\0", chunk, |data| parser.feed(knobs, data))
}

/// `true`, case-insensitively and ignoring surrounding ASCII whitespace (as the OpenTelemetry SDKs
/// read boolean variables).
pub fn is_true(value: Option<&[u8]>) -> bool {
    match value {
        Some(v) => v.trim_ascii().eq_ignore_ascii_case(b"true"),
        None => false,
    }
}
