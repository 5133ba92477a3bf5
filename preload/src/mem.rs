//! The memory functions the compiler emits calls to (`memcpy`, `memset`, ...), defined here so that
//! none is imported from a C library.
//!
//! They must not be exported either (another object of the process could bind to them), and
//! rustc exports every `#[no_mangle]` function of a cdylib. So they are ordinary, unexported Rust
//! functions, and the C names are hidden-visibility assembler aliases of them: the static linker
//! resolves the compiler's calls to the aliases, and hidden symbols never reach the dynamic
//! symbol table.
//!
//! Byte loops with volatile accesses, so that the optimiser cannot turn a loop back into a call to
//! the very function it implements. The library copies only a few kilobytes, once.

use core::ptr::{read_volatile, write_volatile};

macro_rules! hidden_alias {
    ($name:literal, $target:ident) => {
        core::arch::global_asm!(
            concat!(".globl ", $name),
            concat!(".hidden ", $name),
            concat!(".type ", $name, ", %function"),
            concat!(".set ", $name, ", {target}"),
            target = sym $target,
        );
    };
}

hidden_alias!("memcpy", memcpy_impl);
hidden_alias!("memmove", memmove_impl);
hidden_alias!("memset", memset_impl);
hidden_alias!("memcmp", memcmp_impl);
hidden_alias!("bcmp", bcmp_impl);

unsafe extern "C" fn memcpy_impl(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller guarantees both ranges are valid for `n` bytes.
        unsafe { write_volatile(dest.add(i), read_volatile(src.add(i))) };
        i += 1;
    }
    dest
}

unsafe extern "C" fn memmove_impl(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize) <= (src as usize) {
        let mut i = 0;
        while i < n {
            // SAFETY: as memcpy; copying forwards is correct when dest is below src.
            unsafe { write_volatile(dest.add(i), read_volatile(src.add(i))) };
            i += 1;
        }
    } else {
        let mut i = n;
        while i > 0 {
            i -= 1;
            // SAFETY: as memcpy; copying backwards is correct when dest is above src.
            unsafe { write_volatile(dest.add(i), read_volatile(src.add(i))) };
        }
    }
    dest
}

unsafe extern "C" fn memset_impl(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller guarantees `dest` is valid for `n` bytes.
        unsafe { write_volatile(dest.add(i), c as u8) };
        i += 1;
    }
    dest
}

unsafe extern "C" fn memcmp_impl(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller guarantees both ranges are valid for `n` bytes.
        let (x, y) = unsafe { (read_volatile(a.add(i)), read_volatile(b.add(i))) };
        if x != y {
            return x as i32 - y as i32;
        }
        i += 1;
    }
    0
}

unsafe extern "C" fn bcmp_impl(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp_impl(a, b, n) }
}
