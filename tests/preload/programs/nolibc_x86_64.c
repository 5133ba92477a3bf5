/* A dynamically linked executable that uses no C library at all: built with
 * `gcc -nostdlib -fPIE -pie`, it has a program interpreter (so LD_PRELOAD applies) but no
 * DT_NEEDED entry and no undefined symbol. Like Go binaries built with -buildmode=pie. */
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static const char out[] = "libc-free stdout\n";
static const char err[] = "libc-free stderr\n";

void _start(void) {
    sys3(1, 1, (long)out, sizeof out - 1);  /* write(1, ...) */
    sys3(1, 2, (long)err, sizeof err - 1);  /* write(2, ...) */
    sys3(231, 7, 0, 0);                     /* exit_group(7) */
    for (;;) {
    }
}
