"""The shipped preload library, inspected with readelf/nm: loadable by every dynamically linked
executable, whatever its C library, because it needs nothing and offers nothing.

- no DT_NEEDED entry (no libc.so.6, no musl, no libgcc_s), no version requirement, no RPATH;
- no undefined GLOBAL or WEAK dynamic symbol (nothing for the loader to resolve);
- no exported symbol: the dynamic symbol table holds only the mandatory null entry, and the
  loader finds the constructor through DT_INIT_ARRAY;
- no destructor, no executable stack, no text relocations, no program interpreter.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package: binutils)")
    return path


def readelf(lib, *args: str) -> str:
    proc = subprocess.run([tool("readelf"), "-W", *args, str(lib)], capture_output=True, text=True, check=True)
    return proc.stdout


def dynamic_entries(lib) -> list[tuple[str, str]]:
    """(TYPE, value) for each entry of the dynamic section."""
    entries = []
    for line in readelf(lib, "-d").splitlines():
        m = re.match(r"\s*0x[0-9a-f]+\s+\((\w+)\)\s+(.*)$", line)
        if m:
            entries.append((m.group(1), m.group(2).strip()))
    return entries


def dynamic_symbols(lib) -> list[dict]:
    """Rows of `readelf --dyn-syms`: num, value, size, type, bind, vis, ndx, name."""
    rows = []
    for line in readelf(lib, "--dyn-syms").splitlines():
        m = re.match(r"\s*(\d+):\s+([0-9a-f]+)\s+(\d+|0x[0-9a-f]+)\s+(\w+)\s+(\w+)\s+(\w+)\s+(\w+)\s*(.*)$", line)
        if m:
            keys = ("num", "value", "size", "type", "bind", "vis", "ndx", "name")
            rows.append(dict(zip(keys, m.groups())))
    return rows


def test_is_a_shared_object_for_this_machine(preload_lib):
    header = readelf(preload_lib, "-h")
    assert re.search(r"Type:\s+DYN", header), header
    assert re.search(r"Class:\s+ELF64", header), header


def test_no_needed_libraries(preload_lib):
    entries = dynamic_entries(preload_lib)
    assert entries, "no dynamic section found"
    needed = [value for kind, value in entries if kind == "NEEDED"]
    assert needed == [], f"the library depends on {needed}: as a preload it would break processes without them"


def test_no_version_requirements_rpath_or_textrel(preload_lib):
    kinds = {kind for kind, _ in dynamic_entries(preload_lib)}
    for unwanted in ("VERNEED", "VERNEEDNUM", "RPATH", "RUNPATH", "TEXTREL", "FINI", "FINI_ARRAY", "INIT"):
        assert unwanted not in kinds, f"unexpected dynamic entry {unwanted}"


def test_constructor_is_in_init_array(preload_lib):
    entries = dict(dynamic_entries(preload_lib))
    assert "INIT_ARRAY" in entries, entries
    assert entries.get("INIT_ARRAYSZ", "").startswith("8 "), f"expected exactly one constructor: {entries}"


def test_no_undefined_global_or_weak_symbols(preload_lib):
    undefined = [s for s in dynamic_symbols(preload_lib) if s["ndx"] == "UND" and s["bind"] in ("GLOBAL", "WEAK")]
    assert undefined == [], f"undefined dynamic symbols (a loader would have to resolve them): {undefined}"


def test_exports_nothing(preload_lib):
    """Only LOCAL entries: the null symbol (and, with GNU ld, LOCAL SECTION symbols, which nothing can bind to)."""
    symbols = dynamic_symbols(preload_lib)
    assert symbols and symbols[0]["ndx"] == "UND" and symbols[0]["name"] == "", symbols
    exported = [s for s in symbols if s["bind"] != "LOCAL" or s["type"] not in ("NOTYPE", "SECTION")]
    assert exported == [], f"symbols another object could bind to: {exported}"
    named = [s for s in symbols if s["name"] and s["type"] != "SECTION"]
    assert named == [], named


def test_nm_agrees(preload_lib):
    nm = tool("nm")
    for flag in ("--undefined-only", "--defined-only"):
        proc = subprocess.run([nm, "-D", flag, str(preload_lib)], capture_output=True, text=True)
        # nm prints nothing (or "no symbols" on stderr) for an empty dynamic symbol table.
        assert proc.stdout.strip() == "", f"nm -D {flag}:\n{proc.stdout}"


def test_no_interpreter_and_non_executable_stack(preload_lib):
    program_headers = readelf(preload_lib, "-l")
    assert "INTERP" not in program_headers
    stack = [line for line in program_headers.splitlines() if "GNU_STACK" in line]
    assert stack and not re.search(r"\bRWE\b", stack[0]), stack
