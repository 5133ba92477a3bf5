//! `libferrotel_preload.so`: an `LD_PRELOAD` / `/etc/ld.so.preload` library whose constructor, in a
//! CPython process, puts the ferrotel bootstrap directory first on `PYTHONPATH`, and in every other
//! process does nothing at all. See README.md for the design.
//!
//! Ground rules, because it runs inside every process on a machine, before `main`:
//! - no libc: no `DT_NEEDED` entry, no undefined symbol, nothing exported (see build.rs); the
//!   environment is read from `/proc/self/environ`, and the only libc functions ever called
//!   (`getenv`, `setenv`, in CPython processes only) are found at run time in the process's own,
//!   already initialised C library;
//! - no allocation, no threads, no Python, no panics: every failure makes it stand down.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

mod buf;
mod elf;
mod environ;
mod glob;
mod log;
mod maps;
mod mem;
mod python;
mod sys;

use core::cell::UnsafeCell;

use buf::Buf;
use environ::Knobs;
use log::{Level, Logger};
use maps::{Maps, PATH_CAP};

/// Where the bootstrap `sitecustomize.py` sits, relative to the directory of this library.
const BOOTSTRAP_SUBDIR: &[u8] = b"/opentelemetry/instrumentation/auto_instrumentation";
/// Longest `PYTHONPATH` value handled (existing value plus our directory).
const VALUE_CAP: usize = 64 * 1024;
const CHUNK: usize = 4096;

/// Working memory, in `.bss` (zero pages cost nothing until touched; nothing on the stack is big).
struct Scratch {
    exe: [u8; PATH_CAP],
    chunk: [u8; CHUNK],
    knobs: Knobs,
    maps: Maps,
    agent_dir: Buf<PATH_CAP>,
    probe: Buf<PATH_CAP>,
    value: Buf<VALUE_CAP>,
}

struct Cell<T>(UnsafeCell<T>);
// SAFETY: only the constructor touches these, once (guarded by `TAKEN`), while the process is still
// single-threaded (preload constructors run before main, before any thread can exist). No atomics:
// on aarch64 they would pull in compiler-builtins' outline-atomics constructor, which calls libc's
// getauxval.
unsafe impl<T> Sync for Cell<T> {}

static SCRATCH: Cell<Scratch> = Cell(UnsafeCell::new(Scratch {
    exe: [0; PATH_CAP],
    chunk: [0; CHUNK],
    knobs: Knobs::new(),
    maps: Maps::new(),
    agent_dir: Buf::new(),
    probe: Buf::new(),
    value: Buf::new(),
}));
static TAKEN: Cell<bool> = Cell(UnsafeCell::new(false));

#[ctor::ctor(unsafe)]
fn ferrotel_preload_init() {
    // SAFETY: single-threaded (see `Cell`); `TAKEN` makes this the only `&mut Scratch` ever made,
    // should the loader ever run the constructor twice.
    let scratch = unsafe {
        if *TAKEN.0.get() {
            return;
        }
        *TAKEN.0.get() = true;
        &mut *SCRATCH.0.get()
    };
    run(scratch);
}

type GetenvFn = unsafe extern "C" fn(*const libc::c_char) -> *const libc::c_char;
type SetenvFn = unsafe extern "C" fn(*const libc::c_char, *const libc::c_char, libc::c_int) -> libc::c_int;

fn run(s: &mut Scratch) {
    // 1. The executable. Not CPython (or cannot tell): return, having made this one system call.
    let n = sys::readlink(b"/proc/self/exe\0", &mut s.exe);
    if n <= 0 || n as usize >= s.exe.len() {
        return;
    }
    let Some(exe) = s.exe.get(..n as usize) else {
        return;
    };
    if !python::is_cpython_name(python::basename(exe)) {
        return;
    }

    // 2. The knobs, from the environment the process was started with.
    let env_ok = environ::read(&mut s.knobs, &mut s.chunk);
    let k = &s.knobs;
    let mut log = Logger { level: Level::Error };
    let mut bad_level = false;
    if let Some(value) = k.log_level.get() {
        match Level::parse(value) {
            Some(level) => log.level = level,
            None => bad_level = true,
        }
    }
    if !env_ok {
        log.log(Level::Error, &[b"cannot read /proc/self/environ; not instrumenting ", exe]);
        return;
    }
    if bad_level || k.log_level.truncated() {
        log.log(Level::Error, &[b"ignoring FERROTEL_PRELOAD_LOG_LEVEL (use none, error, info or debug)"]);
    }
    if k.disabled.truncated()
        || k.include.truncated()
        || k.exclude.truncated()
        || k.otel_sdk_disabled.truncated()
    {
        log.log(
            Level::Error,
            &[b"a FERROTEL_PRELOAD_* or OTEL_SDK_DISABLED value is too long; not instrumenting ", exe],
        );
        return;
    }
    if environ::is_true(k.disabled.get()) {
        log.log(Level::Debug, &[b"FERROTEL_PRELOAD_DISABLED=true; not instrumenting ", exe]);
        return;
    }
    if environ::is_true(k.otel_sdk_disabled.get()) {
        log.log(Level::Debug, &[b"OTEL_SDK_DISABLED=true; not instrumenting ", exe]);
        return;
    }
    if let Some(list) = k.include.get()
        && glob::has_patterns(list)
        && !glob::matches_any(list, exe)
    {
        log.log(Level::Debug, &[exe, b" matches no FERROTEL_PRELOAD_INCLUDE pattern; not instrumenting"]);
        return;
    }
    if let Some(list) = k.exclude.get()
        && glob::matches_any(list, exe)
    {
        log.log(Level::Debug, &[exe, b" matches FERROTEL_PRELOAD_EXCLUDE; not instrumenting"]);
        return;
    }

    // 3. A set-user-ID/-group or otherwise privileged start (AT_SECURE): leave it alone.
    let Some(aux) = auxv(&mut s.chunk) else {
        log.log(Level::Error, &[b"cannot read /proc/self/auxv; not instrumenting ", exe]);
        return;
    };
    if aux.secure {
        log.log(Level::Debug, &[b"secure-execution mode (AT_SECURE); not instrumenting ", exe]);
        return;
    }

    // 4. Where this library lives, and where the process's C library is mapped.
    let own_addr = ferrotel_preload_init as fn() as usize;
    if !maps::read(&mut s.maps, own_addr, aux.interp_base, &mut s.chunk) {
        log.log(Level::Error, &[b"cannot read /proc/self/maps; not instrumenting ", exe]);
        return;
    }
    let info = &s.maps.info;
    let own = info.own_path.as_bytes();
    let Some(own_dir) = python::dirname(own).filter(|_| own.starts_with(b"/")) else {
        log.log(
            Level::Error,
            &[b"cannot find this library's own path in /proc/self/maps; not instrumenting ", exe],
        );
        return;
    };
    s.agent_dir.extend(own_dir);
    s.agent_dir.extend(BOOTSTRAP_SUBDIR);
    let agent_dir = s.agent_dir.as_bytes();
    if s.agent_dir.overflowed() || agent_dir.contains(&b':') || agent_dir.contains(&b'\\') {
        log.log(
            Level::Error,
            &[b"agent directory path unusable in PYTHONPATH (':', '\\' or too long): ", agent_dir],
        );
        return;
    }
    s.probe.extend(agent_dir);
    s.probe.extend(b"/sitecustomize.py");
    match s.probe.c_str() {
        Some(path) if sys::readable(path) => {}
        _ => {
            log.log(Level::Error, &[b"no bootstrap at ", s.probe.as_bytes(), b"; not instrumenting ", exe]);
            return;
        }
    }

    // 5. getenv/setenv of the process's own C library.
    let Some((getenv, setenv)) = libc_env_functions(&s.maps.info) else {
        let info = &s.maps.info;
        log.log(
            Level::Error,
            &[
                b"cannot locate getenv/setenv in the C library (candidates: '",
                info.named.path.as_bytes(),
                b"', '",
                info.interp.path.as_bytes(),
                b"'); not instrumenting ",
                exe,
            ],
        );
        return;
    };

    // 6. The current PYTHONPATH; idempotent: nothing to do if our directory is already on it.
    // SAFETY: getenv of the process's C library, called with a NUL-terminated name.
    let current = unsafe { getenv(c"PYTHONPATH".as_ptr()) };
    let value = &mut s.value;
    value.extend(agent_dir);
    if !current.is_null() {
        // SAFETY: a non-null getenv result is a NUL-terminated string that stays valid until the
        // environment is next modified (by us, below, after this copy).
        let old = unsafe { c_str_bytes(current, VALUE_CAP) };
        let Some(old) = old else {
            log.log(Level::Error, &[b"PYTHONPATH is too long; not instrumenting ", exe]);
            return;
        };
        if old.split(|&b| b == b':').any(|entry| same_dir(entry, agent_dir)) {
            log.log(Level::Debug, &[b"PYTHONPATH already has ", agent_dir, b"; nothing to do in ", exe]);
            return;
        }
        if !old.is_empty() {
            // An empty PYTHONPATH stays out: "dir:" would add the working directory to sys.path.
            value.push(b':');
            value.extend(old);
        }
    }
    let Some(new_value) = value.c_str() else {
        log.log(Level::Error, &[b"PYTHONPATH would be too long; not instrumenting ", exe]);
        return;
    };

    // 7. Set it. setenv is safe here: preload constructors run before main, single-threaded.
    // SAFETY: setenv of the process's C library, with NUL-terminated name and value.
    let rc = unsafe { setenv(c"PYTHONPATH".as_ptr(), new_value.as_ptr() as *const libc::c_char, 1) };
    if rc != 0 {
        log.log(Level::Error, &[b"setenv(PYTHONPATH) failed; not instrumenting ", exe]);
        return;
    }
    let shown = new_value.get(..new_value.len().saturating_sub(1)).unwrap_or(&[]);
    log.log(Level::Info, &[b"PYTHONPATH=", shown, b" for ", exe]);
}

/// Whether two PYTHONPATH entries name the same directory, ignoring trailing slashes.
fn same_dir(entry: &[u8], dir: &[u8]) -> bool {
    fn trim(p: &[u8]) -> &[u8] {
        let mut p = p;
        while p.len() > 1 && p.last() == Some(&b'/') {
            p = p.get(..p.len() - 1).unwrap_or(p);
        }
        p
    }
    trim(entry) == trim(dir)
}

/// The bytes of the C string at `ptr` (without its NUL), or None if it is longer than `cap`.
///
/// # Safety
/// `ptr` must point to a NUL-terminated string.
unsafe fn c_str_bytes<'a>(ptr: *const libc::c_char, cap: usize) -> Option<&'a [u8]> {
    let p = ptr as *const u8;
    let mut len = 0usize;
    // SAFETY: every byte up to and including the NUL is readable (caller's contract).
    while unsafe { *p.add(len) } != 0 {
        len += 1;
        if len > cap {
            return None;
        }
    }
    // SAFETY: `len` bytes are readable and stay valid while the caller uses them.
    Some(unsafe { core::slice::from_raw_parts(p, len) })
}

/// getenv and setenv of the process's C library, looked up in its in-memory ELF symbol table:
/// the library named like a C library first, else the program interpreter (musl).
fn libc_env_functions(info: &maps::MapsInfo) -> Option<(GetenvFn, SetenvFn)> {
    env_functions_in(&info.named).or_else(|| env_functions_in(&info.interp))
}

fn env_functions_in(lib: &maps::Lib) -> Option<(GetenvFn, SetenvFn)> {
    if !lib.found() || lib.overflowed {
        return None;
    }
    let image = elf::Image::open(elf::Memory::new(lib.ranges()), lib.header?)?;
    let getenv = image.function(b"getenv")?;
    let setenv = image.function(b"setenv")?;
    // SAFETY: both addresses are the default-version definitions of these exported functions in
    // an executable mapping of the process's C library, whose C ABI signatures are as declared.
    unsafe {
        Some((
            core::mem::transmute::<usize, GetenvFn>(getenv),
            core::mem::transmute::<usize, SetenvFn>(setenv),
        ))
    }
}

struct Aux {
    /// AT_SECURE: set-user-ID/-group, capabilities, or another secure-execution start.
    secure: bool,
    /// AT_BASE: where the program interpreter is mapped (0 if none).
    interp_base: usize,
}

/// The entries of `/proc/self/auxv` this library uses (None if it cannot be read).
fn auxv(chunk: &mut [u8]) -> Option<Aux> {
    let mut pending = Buf::<16>::new();
    let mut aux = Aux { secure: false, interp_base: 0 };
    let ok = sys::read_file(b"/proc/self/auxv\0", chunk, |data| {
        for &b in data {
            pending.push(b);
            let bytes = pending.as_bytes();
            if bytes.len() < 16 {
                continue;
            }
            let word = |i: usize| -> usize {
                let mut w = [0u8; core::mem::size_of::<usize>()];
                if let Some(src) = bytes.get(i..i + w.len()) {
                    w.copy_from_slice(src);
                }
                usize::from_ne_bytes(w)
            };
            let (key, value) = (word(0), word(8));
            if key == libc::AT_SECURE as usize {
                aux.secure = value != 0;
            } else if key == libc::AT_BASE as usize {
                aux.interp_base = value;
            }
            pending.clear();
        }
    });
    if ok { Some(aux) } else { None }
}

#[panic_handler]
fn on_panic(_: &core::panic::PanicInfo) -> ! {
    // The library contains no reachable panic: if the optimiser could not remove every panic path,
    // this reference to a symbol that exists nowhere fails the link (-z defs), instead of shipping a
    // constructor that could abort someone's process. (Both cargo profiles build with LTO and
    // without debug assertions, see Cargo.toml.)
    unsafe extern "C" {
        fn ferrotel_preload_has_a_reachable_panic_path() -> !;
    }
    // SAFETY: never linked; see above.
    unsafe { ferrotel_preload_has_a_reachable_panic_path() }
}
