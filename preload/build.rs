//! Link flags that make libferrotel_preload.so loadable by every dynamically linked executable:
//! no libc, no start files, and a link that fails on any undefined symbol. They live here rather
//! than in .cargo/config.toml because cargo reads that file only when it runs from inside this
//! directory, and the Makefile builds with `--manifest-path`.
//!
//! Exports: rustc gives every cdylib a version script that exports only the crate's
//! `#[no_mangle]` items and makes everything else local. This crate has none (the memory functions
//! in src/mem.rs are hidden-visibility aliases), so that script is `{ local: *; };` and the dynamic
//! symbol table is empty. A second script of our own would be redundant, and GNU ld refuses to
//! combine two anonymous version scripts. tests/preload/test_preload_elf.py checks the result.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    println!("cargo:rerun-if-changed=build.rs");
    if os != "linux" {
        return;
    }
    for arg in [
        // No crti.o/crtbeginS.o/crtendS.o: they bring weak undefined references
        // (__cxa_finalize, __gmon_start__, _ITM_*) and a .fini that calls into libc.
        "-nostartfiles",
        // No implicit -lc, -lgcc, -lgcc_s.
        "-nodefaultlibs",
        // Any library that is named anyway (the libc crate's `#[link(name = "c")]`) is dropped
        // because nothing from it is used: no DT_NEEDED entry.
        "-Wl,--as-needed",
        // Fail the link, rather than the process, if any symbol is left undefined.
        "-Wl,-z,defs",
        // Both hash tables, for old and new loaders alike (both are empty of our symbols).
        "-Wl,--hash-style=both",
        "-Wl,-z,noexecstack",
        "-Wl,-z,relro",
        "-Wl,-z,now",
    ] {
        println!("cargo:rustc-cdylib-link-arg={arg}");
    }
}
