"""The preload library built for aarch64 from the same sources, checked like the shipped x86_64 one
and run under qemu-user: its raw system calls and its lookup of getenv/setenv in an aarch64 glibc.

Optional: skips (with the reason) unless the Rust target aarch64-unknown-linux-gnu, the cross
compiler aarch64-linux-gnu-gcc and qemu-aarch64 with an aarch64 glibc are installed (Debian
packages gcc-aarch64-linux-gnu, qemu-user; `rustup target add aarch64-unknown-linux-gnu`).

Under qemu-user, /proc/self/exe, maps and auxv describe the guest, but /proc/self/environ is
qemu's own: so only the default configuration is exercised here, with `-E` for the guest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from preload_helpers import BOOTSTRAP_SUBDIR, LIB_NAME, PROGRAMS_DIR, base_env, run

REPO = Path(__file__).resolve().parents[2]
TARGET = "aarch64-unknown-linux-gnu"
SYSROOT = Path("/usr/aarch64-linux-gnu")


def _missing() -> str | None:
    for tool in ("cargo", "rustc", "aarch64-linux-gnu-gcc", "qemu-aarch64", "readelf"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True).stdout.strip()
    if not (Path(sysroot) / "lib" / "rustlib" / TARGET).is_dir():
        return f"Rust target {TARGET} not installed (rustup target add {TARGET})"
    if not (SYSROOT / "lib" / "ld-linux-aarch64.so.1").exists():
        return f"no aarch64 glibc under {SYSROOT} (Debian package libc6-arm64-cross)"
    return None


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(f"aarch64 check not possible: {reason}")
    env = {**os.environ, f"CARGO_TARGET_{TARGET.upper().replace('-', '_')}_LINKER": "aarch64-linux-gnu-gcc"}
    build = subprocess.run(
        ["cargo", "build", "--quiet", "--release", "--manifest-path", str(REPO / "preload" / "Cargo.toml"),
         "--target", TARGET],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    tree = tmp_path_factory.mktemp("aarch64-tree")
    lib = tree / LIB_NAME
    shutil.copy2(REPO / "preload" / "target" / TARGET / "release" / LIB_NAME, lib)
    (tree / BOOTSTRAP_SUBDIR).mkdir(parents=True)
    (tree / BOOTSTRAP_SUBDIR / "sitecustomize.py").write_text("")
    bins = tmp_path_factory.mktemp("aarch64-bin")
    for name in ("report", "python3.11"):
        cc = subprocess.run(
            ["aarch64-linux-gnu-gcc", "-O1", "-o", str(bins / name), str(PROGRAMS_DIR / "report.c")],
            capture_output=True, text=True,
        )  # fmt: skip
        assert cc.returncode == 0, cc.stderr
    return {"lib": lib, "agent_dir": str(tree / BOOTSTRAP_SUBDIR), "bins": bins}


def qemu(exe, *guest_env: str):
    args = ["qemu-aarch64", "-L", str(SYSROOT)]
    for item in guest_env:
        args += ["-E", item]
    return run([*args, exe, "3"], base_env())


def test_aarch64_library_needs_and_exports_nothing(arm):
    dyn = subprocess.run(["readelf", "-W", "-d", str(arm["lib"])], capture_output=True, text=True).stdout
    assert "(NEEDED)" not in dyn and "(VERNEED)" not in dyn, dyn
    assert "INIT_ARRAYSZ" in dyn and "8 (bytes)" in dyn.split("INIT_ARRAYSZ", 1)[1].splitlines()[0], dyn
    syms = subprocess.run(["readelf", "-W", "--dyn-syms", str(arm["lib"])], capture_output=True, text=True).stdout
    for line in syms.splitlines():
        fields = line.split()
        if fields and fields[0].rstrip(":").isdigit():
            assert fields[4] == "LOCAL", f"non-local dynamic symbol: {line}"


def test_aarch64_other_process_unchanged(arm):
    plain = qemu(arm["bins"] / "report")
    pre = qemu(arm["bins"] / "report", f"LD_PRELOAD={arm['lib']}")
    lines = [line for line in pre.stdout.split(b"\n") if not line.startswith(b"environ LD_PRELOAD=")]
    assert (pre.returncode, b"\n".join(lines), pre.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert plain.returncode == 3


def test_aarch64_standin_gets_agent_dir(arm):
    result = qemu(arm["bins"] / "python3.11", f"LD_PRELOAD={arm['lib']}", "PYTHONPATH=/app")
    expected = f"{arm['agent_dir']}:/app"
    assert f"environ PYTHONPATH={expected}\n".encode() in result.stdout, result.stdout
    assert f"getenv PYTHONPATH={expected}\n".encode() in result.stdout, result.stdout
    assert result.stderr == b"report: stderr line\n"
