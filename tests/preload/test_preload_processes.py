"""Non-Python processes run with and without LD_PRELOAD=libferrotel_preload.so: byte-identical
stdout, stderr and exit status. Each pair of runs uses the same environment except LD_PRELOAD
itself, which is filtered out of outputs that print the environment.

Then the CPython path, driven by a C stand-in named `python3.11` (the library decides from the
executable's file name), which prints what both `getenv` and `environ` see: this exercises the
glibc and the musl way of reaching setenv, and every knob, quickly and without Python itself.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from preload_helpers import BOOTSTRAP_SUBDIR, LIB_NAME, Result, base_env, run, run_pair

STANDIN = "python3.11"


def without_ld_preload(output: bytes) -> bytes:
    """Drop the LD_PRELOAD=... line (whatever prefix an output puts before it)."""
    lines = output.split(b"\n")
    return b"\n".join(line for line in lines if not (line.startswith(b"LD_PRELOAD=") or b" LD_PRELOAD=" in line))


def assert_identical(plain: Result, preloaded: Result, filter_env: bool = False):
    out_plain, out_pre = plain.stdout, preloaded.stdout
    if filter_env:
        out_pre = without_ld_preload(out_pre)
        assert out_pre != preloaded.stdout, "expected the LD_PRELOAD line in the preloaded run's output"
    assert preloaded.returncode == plain.returncode
    assert out_pre == out_plain
    assert preloaded.stderr == plain.stderr


# --------------------------------------------------------------------------- ordinary processes


def test_shell_echo_and_exit_status(preload_lib):
    plain, pre = run_pair(["/bin/sh", "-c", "echo hi; echo oops >&2; exit 3"], base_env(), preload_lib)
    assert (plain.returncode, plain.stdout) == (3, b"hi\n")
    assert_identical(plain, pre)


@pytest.mark.parametrize("log_level", [None, "debug"])
def test_env_gets_no_new_variable(preload_lib, log_level):
    """`env` prints the same environment (bar LD_PRELOAD itself), even at log level debug:
    a non-Python process is left alone and nothing is printed."""
    env = base_env() if log_level is None else base_env(FERROTEL_PRELOAD_LOG_LEVEL=log_level)
    plain, pre = run_pair([shutil.which("env") or "/usr/bin/env"], env, preload_lib)
    assert_identical(plain, pre, filter_env=True)
    assert b"PYTHONPATH" not in pre.stdout


def test_ls(preload_lib, tmp_path):
    for name in ("a.txt", "b", "c.py"):
        (tmp_path / name).write_text(name)
    (tmp_path / "sub").mkdir()
    ls = shutil.which("ls") or "/bin/ls"
    plain, pre = run_pair([ls, "-la", str(tmp_path), "/nonexistent-dir-for-stderr"], base_env(), preload_lib)
    assert plain.returncode != 0 and plain.stderr  # the missing directory: a non-zero status and stderr
    assert_identical(plain, pre)


def test_dynamic_glibc_program(preload_lib, programs):
    exe = programs.report_glibc()
    plain, pre = run_pair([exe, "5", "arg"], base_env(), preload_lib)
    assert plain.returncode == 5
    assert_identical(plain, pre, filter_env=True)


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_statically_linked_program(preload_lib, programs, libc):
    exe = programs.report_glibc_static() if libc == "glibc" else programs.report_musl_static()
    assert "statically linked" in _file_kind(exe) or not _has_interp(exe)
    plain, pre = run_pair([exe, "6"], base_env(), preload_lib)
    assert plain.returncode == 6
    assert_identical(plain, pre, filter_env=True)


def test_libc_free_dynamic_program(preload_lib, programs):
    """A dynamically linked executable with no C library at all (like a Go -buildmode=pie binary):
    LD_PRELOAD applies to it, and a library needing any libc symbol would kill it (exit 127)."""
    exe = programs.nolibc()
    assert _has_interp(exe), "the test program should have a program interpreter (be dynamically linked)"
    assert _needed(exe) == [], "the test program should need no shared library"
    plain, pre = run_pair([exe], base_env(), preload_lib)
    assert (plain.returncode, plain.stdout, plain.stderr) == (7, b"libc-free stdout\n", b"libc-free stderr\n")
    assert_identical(plain, pre)


def test_musl_dynamic_program(preload_lib, programs):
    exe = programs.report_musl()
    assert "musl" in _interp(exe), _interp(exe)
    plain, pre = run_pair([exe, "4"], base_env(), preload_lib)
    assert plain.returncode == 4
    assert_identical(plain, pre, filter_env=True)


def test_libc_free_program_named_like_python(preload_lib, programs):
    """A libc-free executable that happens to be called python3.11: the library cannot reach setenv,
    so it stands down. Its output and status are unchanged; it says why on stderr (log level error,
    the default), and says nothing at log level none."""
    exe = programs.nolibc(STANDIN)
    plain, pre = run_pair([exe], base_env(), preload_lib)
    assert (pre.returncode, pre.stdout) == (plain.returncode, plain.stdout)
    assert pre.stderr.endswith(plain.stderr)  # the constructor's line comes before anything main writes
    extra = pre.stderr[: len(pre.stderr) - len(plain.stderr)]
    assert extra.count(b"\n") == 1 and b"ferrotel-preload[" in extra and b"error: cannot locate getenv/setenv" in extra
    plain, pre = run_pair([exe], base_env(FERROTEL_PRELOAD_LOG_LEVEL="none"), preload_lib)
    assert_identical(plain, pre)


# --------------------------------------------------------------------------- the CPython path (stand-in)


def seen(result: Result) -> tuple[list, str]:
    """(PYTHONPATH values found in environ, getenv's PYTHONPATH) as printed by programs/report.c."""
    lines = result.stdout.decode().splitlines()
    in_environ = [line.split("=", 1)[1] for line in lines if line.startswith("environ PYTHONPATH=")]
    getenv = next(line.split("=", 1)[1] for line in lines if line.startswith("getenv PYTHONPATH="))
    return in_environ, getenv


@pytest.fixture(params=["glibc", "musl"])
def standin(request, programs) -> Path:
    """The report program named python3.11, linked against glibc or musl (dynamically)."""
    return programs.report_glibc(STANDIN) if request.param == "glibc" else programs.report_musl(STANDIN)


def run_standin(exe, lib, **env) -> Result:
    return run([exe, "0"], {**base_env(**env), "LD_PRELOAD": str(lib)})


def test_standin_gets_agent_dir(standin, preload_lib, agent_dir):
    """PYTHONPATH is set, seen identically by getenv and in environ, once; nothing is printed."""
    result = run_standin(standin, preload_lib)
    assert seen(result) == ([agent_dir], agent_dir)
    assert result.stderr == b"report: stderr line\n"
    assert result.returncode == 0


def test_standin_keeps_existing_pythonpath(standin, preload_lib, agent_dir):
    result = run_standin(standin, preload_lib, PYTHONPATH="/app/lib:/app/more")
    assert seen(result) == ([f"{agent_dir}:/app/lib:/app/more"], f"{agent_dir}:/app/lib:/app/more")


def test_standin_empty_pythonpath_adds_no_empty_entry(standin, preload_lib, agent_dir):
    """An empty PYTHONPATH becomes just our directory: `dir:` would put the working directory on sys.path."""
    result = run_standin(standin, preload_lib, PYTHONPATH="")
    assert seen(result) == ([agent_dir], agent_dir)


@pytest.mark.parametrize("form", ["{dir}", "/x:{dir}", "{dir}/:/y"])
def test_standin_idempotent(standin, preload_lib, agent_dir, form):
    """Already on PYTHONPATH (as a child that inherited it has it): left exactly as it is."""
    value = form.format(dir=agent_dir)
    result = run_standin(standin, preload_lib, PYTHONPATH=value)
    assert seen(result) == ([value], value)


def test_standin_child_chain_adds_once(preload_lib, programs, agent_dir):
    """A process that inherits the environment of an instrumented one (with LD_PRELOAD) is not changed again."""
    exe = programs.report_glibc(STANDIN)
    first = run_standin(exe, preload_lib, PYTHONPATH="/app")
    (inherited,), _ = seen(first)
    second = run_standin(exe, preload_lib, PYTHONPATH=inherited)
    assert seen(second) == ([f"{agent_dir}:/app"], f"{agent_dir}:/app")


@pytest.mark.parametrize(
    "knobs",
    [
        {"FERROTEL_PRELOAD_DISABLED": "true"},
        {"FERROTEL_PRELOAD_DISABLED": " TRUE "},
        {"OTEL_SDK_DISABLED": "true"},
        {"FERROTEL_PRELOAD_EXCLUDE": "*/python3.1?"},
        {"FERROTEL_PRELOAD_EXCLUDE": "/nowhere/*, *"},
        {"FERROTEL_PRELOAD_INCLUDE": "/nowhere/*"},
        {"FERROTEL_PRELOAD_INCLUDE": "{exe_dir}/*", "FERROTEL_PRELOAD_EXCLUDE": "{exe}"},
    ],
    ids=["disabled", "disabled-case", "sdk-disabled", "exclude", "exclude-list", "include-other", "exclude-wins"],
)
def test_standin_knobs_that_stand_down(standin, preload_lib, knobs):
    env = {k: v.format(exe=standin, exe_dir=standin.parent) for k, v in knobs.items()}
    plain = run([standin, "0"], base_env(**env))
    pre = run_standin(standin, preload_lib, **env)
    assert seen(pre) == ([], "(unset)")
    assert_identical(plain, pre, filter_env=True)


@pytest.mark.parametrize(
    "knobs",
    [
        {"FERROTEL_PRELOAD_DISABLED": "false"},
        {"OTEL_SDK_DISABLED": "false"},
        {"FERROTEL_PRELOAD_INCLUDE": "{exe_dir}/*"},
        {"FERROTEL_PRELOAD_INCLUDE": "/nowhere/*,*/python3.11"},
        {"FERROTEL_PRELOAD_INCLUDE": ""},
        {"FERROTEL_PRELOAD_EXCLUDE": "/nowhere/*"},
    ],
    ids=["disabled-false", "sdk-disabled-false", "include", "include-list", "include-empty", "exclude-other"],
)
def test_standin_knobs_that_keep_it(standin, preload_lib, agent_dir, knobs):
    env = {k: v.format(exe=standin, exe_dir=standin.parent) for k, v in knobs.items()}
    result = run_standin(standin, preload_lib, **env)
    assert seen(result) == ([agent_dir], agent_dir)
    assert result.stderr == b"report: stderr line\n"


def log_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.decode().splitlines() if line.startswith("ferrotel-preload[")]


def test_log_level_info_reports_the_change(standin, preload_lib, agent_dir):
    result = run_standin(standin, preload_lib, FERROTEL_PRELOAD_LOG_LEVEL="info")
    (line,) = log_lines(result)
    assert f"info: PYTHONPATH={agent_dir} for " in line and line.endswith(STANDIN)


def test_log_level_debug_explains_standing_down(standin, preload_lib):
    result = run_standin(standin, preload_lib, FERROTEL_PRELOAD_LOG_LEVEL="debug", FERROTEL_PRELOAD_EXCLUDE="*")
    (line,) = log_lines(result)
    assert "debug: " in line and "FERROTEL_PRELOAD_EXCLUDE" in line


def test_invalid_log_level_is_reported_and_ignored(standin, preload_lib, agent_dir):
    result = run_standin(standin, preload_lib, FERROTEL_PRELOAD_LOG_LEVEL="loud")
    (line,) = log_lines(result)
    assert "error: ignoring FERROTEL_PRELOAD_LOG_LEVEL" in line
    assert seen(result) == ([agent_dir], agent_dir)


@pytest.fixture
def lone_lib(preload_lib, tmp_path) -> Path:
    """A copy of the library in a directory without the agent tree."""
    lib = tmp_path / "lonely" / LIB_NAME
    lib.parent.mkdir()
    shutil.copy2(preload_lib, lib)
    return lib


def test_missing_bootstrap_stands_down_with_an_error(standin, lone_lib):
    result = run_standin(standin, lone_lib)
    assert seen(result) == ([], "(unset)")
    (line,) = log_lines(result)
    assert "error: no bootstrap at " in line and f"{BOOTSTRAP_SUBDIR}/sitecustomize.py" in line
    quiet = run_standin(standin, lone_lib, FERROTEL_PRELOAD_LOG_LEVEL="none")
    assert quiet.stderr == b"report: stderr line\n"


def test_directory_with_colon_stands_down(standin, dist_dir, tmp_path):
    """A directory that PYTHONPATH cannot express (it contains ':') is refused, not mangled. (LD_PRELOAD
    itself splits on ':', so such a directory is reached through a symlink; the library's own path,
    from /proc/self/maps, is the resolved one.)"""
    tree = tmp_path / "odd:dir"
    shutil.copytree(dist_dir, tree, symlinks=True)
    link = tmp_path / "link"
    link.symlink_to(tree)
    result = run_standin(standin, link / LIB_NAME)
    assert seen(result) == ([], "(unset)")
    (line,) = log_lines(result)
    assert "error: agent directory path unusable in PYTHONPATH" in line


# --------------------------------------------------------------------------- helpers


def _readelf(exe, *args) -> str:
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf not installed (Debian package: binutils)")
    return subprocess.run([readelf, "-W", *args, str(exe)], capture_output=True, text=True).stdout


def _has_interp(exe) -> bool:
    return "INTERP" in _readelf(exe, "-l")


def _interp(exe) -> str:
    for line in _readelf(exe, "-l").splitlines():
        if "program interpreter" in line:
            return line
    return ""


def _needed(exe) -> list:
    return [line for line in _readelf(exe, "-d").splitlines() if "(NEEDED)" in line]


def _file_kind(exe) -> str:
    return "statically linked" if not _has_interp(exe) else "dynamically linked"
