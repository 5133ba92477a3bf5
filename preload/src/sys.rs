//! The few system calls the constructor makes, issued directly (no libc function is linked).
//!
//! Every wrapper returns the raw kernel result: a non-negative value, or `-errno`.

use core::arch::asm;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("ferrotel-preload issues raw system calls and supports only x86_64 and aarch64 Linux");

#[cfg(not(target_os = "linux"))]
compile_error!("ferrotel-preload is Linux-only");

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn syscall4(n: libc::c_long, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for syscall `n`; rcx and r11 are clobbered by `syscall`.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn syscall4(n: libc::c_long, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for syscall `n`.
    unsafe {
        asm!(
            "svc 0",
            in("x8") n as usize,
            inlateout("x0") a1 => ret,
            in("x1") a2,
            in("x2") a3,
            in("x3") a4,
            options(nostack),
        );
    }
    ret
}

/// `openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | extra)`; `path` must end with a NUL byte.
pub fn open_readonly(path: &[u8], extra_flags: libc::c_int) -> isize {
    if path.last() != Some(&0) {
        return -(libc::EINVAL as isize);
    }
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | extra_flags;
    // SAFETY: `path` is a NUL-terminated byte string that outlives the call.
    unsafe { syscall4(libc::SYS_openat, libc::AT_FDCWD as usize, path.as_ptr() as usize, flags as usize, 0) }
}

/// `read(fd, buf, buf.len())`, retried on EINTR.
pub fn read(fd: isize, buf: &mut [u8]) -> isize {
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes.
        let n = unsafe { syscall4(libc::SYS_read, fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0) };
        if n != -(libc::EINTR as isize) {
            return n;
        }
    }
}

pub fn close(fd: isize) {
    // SAFETY: closing a descriptor this library opened itself.
    unsafe {
        syscall4(libc::SYS_close, fd as usize, 0, 0, 0);
    }
}

/// `readlinkat(AT_FDCWD, path, buf, buf.len())`; `path` must end with a NUL byte.
pub fn readlink(path: &[u8], buf: &mut [u8]) -> isize {
    if path.last() != Some(&0) {
        return -(libc::EINVAL as isize);
    }
    // SAFETY: `path` is NUL-terminated, `buf` is writable for `buf.len()` bytes.
    unsafe {
        syscall4(
            libc::SYS_readlinkat,
            libc::AT_FDCWD as usize,
            path.as_ptr() as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
        )
    }
}

/// Writes all of `bytes` to `fd` (best effort: gives up on any error).
pub fn write_all(fd: isize, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is readable for `bytes.len()` bytes.
        let n = unsafe { syscall4(libc::SYS_write, fd as usize, bytes.as_ptr() as usize, bytes.len(), 0) };
        if n == -(libc::EINTR as isize) {
            continue;
        }
        if n <= 0 {
            return;
        }
        match bytes.get(n as usize..) {
            Some(rest) => bytes = rest,
            None => return,
        }
    }
}

pub fn getpid() -> isize {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { syscall4(libc::SYS_getpid, 0, 0, 0, 0) }
}

/// Streams the whole file at `path` (NUL-terminated) through `sink` in chunks of `chunk.len()`.
/// Returns false if the file cannot be opened or read.
pub fn read_file(path: &[u8], chunk: &mut [u8], mut sink: impl FnMut(&[u8])) -> bool {
    let fd = open_readonly(path, 0);
    if fd < 0 {
        return false;
    }
    let ok = loop {
        let n = read(fd, chunk);
        if n < 0 {
            break false;
        }
        if n == 0 {
            break true;
        }
        match chunk.get(..n as usize) {
            Some(data) => sink(data),
            None => break false,
        }
    };
    close(fd);
    ok
}

/// Whether `path` (NUL-terminated) can be opened for reading.
pub fn readable(path: &[u8]) -> bool {
    let fd = open_readonly(path, 0);
    if fd < 0 {
        return false;
    }
    close(fd);
    true
}
