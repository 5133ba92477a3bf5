/* Prints what a process sees, for comparisons with and without the preload library:
 * its arguments, its whole environment (environ, in order), getenv("PYTHONPATH"), one line on
 * stderr; exits with the status given as first argument. Built with glibc (dynamic and static)
 * and, where musl-gcc exists, with musl (dynamic and static). Copies named `python3.11` stand in
 * for a CPython executable. */
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++) printf("environ %s\n", *e);
    const char *pp = getenv("PYTHONPATH");
    printf("getenv PYTHONPATH=%s\n", pp ? pp : "(unset)");
    fprintf(stderr, "report: stderr line\n");
    fflush(NULL);
    return argc > 1 ? atoi(argv[1]) : 0;
}
