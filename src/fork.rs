//! Fork detection. A `pthread_atfork` child handler bumps a generation counter; everything that
//! must not be shared with the parent (export queue and thread, ID generator state, resource with
//! its `process.pid`) remembers the generation it was built in and is rebuilt lazily on first use
//! in the child. The handler itself only does an atomic add: safe in a freshly forked child, where
//! any lock a parent thread held may be held forever. `pthread_atfork` handlers run for every fork
//! (also uwsgi's fork from C, which skips Python's `os.register_at_fork` hooks).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

extern "C" fn on_fork_child() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Install the child handler (idempotent).
pub fn install() {
    REGISTER.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(on_fork_child));
    });
}

/// The current fork generation: 0 in the process that loaded the agent, +1 per fork since.
#[inline]
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_sees_a_new_generation() {
        install();
        let before = generation();
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // Child: exit status tells the parent what it saw.
            let code = if generation() == before + 1 { 0 } else { 1 };
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(generation(), before, "the parent's generation is unchanged");
    }
}
