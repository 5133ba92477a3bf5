"""The native module's ABI, written down (`src/hooks/capi.rs`, its `ABI` table) and checked.

The wheel is `cp39-abi3`: every CPython 3.9+ must be able to load it. So each `Py*`/`_Py*` symbol
the built library leaves undefined must be in CPython's stable ABI as of 3.9
(`tests/abi/stable_abi.txt`, derived from CPython's `Misc/stable_abi.toml`; see its header), and
each C-API function outside it must be a `Runtime` row of the table: looked up in the running
interpreter, with a fallback, and so never linked. pyo3's private `impl_::trampoline` is used in
one place, so pyo3 is pinned exactly and the pin is checked here: an upgrade fails this test until
someone has re-read that code and moved `PYO3_REVIEWED`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.operator import clean_env, operator_pythonpath

REPO = Path(__file__).resolve().parents[2]
CAPI = REPO / "src" / "hooks" / "capi.rs"
STABLE_ABI = Path(__file__).resolve().parent / "stable_abi.txt"
TARGET = (3, 9)  # the wheel's abi3 floor (Cargo.toml: abi3-py39)
# Feature macros that hold on every Linux CPython (the others, MS_WINDOWS, USE_STACKCHECK,
# Py_REF_DEBUG, Py_TRACE_REFS, do not hold on a release build for Linux).
LINUX_FEATURES = {"-", "HAVE_FORK", "PY_HAVE_THREAD_NATIVE_ID"}


def stable_abi(upto=TARGET) -> dict[str, str]:
    """{symbol: added} for the stable ABI's exported symbols up to `upto`, on Linux."""
    out = {}
    for line in STABLE_ABI.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _kind, added, ifdef, _abi_only = line.split("\t")
        if tuple(int(x) for x in added.split(".")) <= upto and ifdef in LINUX_FEATURES:
            out[name] = added
    return out


def abi_table() -> dict[str, str]:
    """{name: "Stable39" | "Runtime" | "Constant"}, from capi.rs's ABI table."""
    rows = re.findall(r'Row \{ name: "(\w+)", abi: Abi::(\w+)', CAPI.read_text())
    assert rows, f"no ABI table found in {CAPI}"
    return dict(rows)


def check(undefined: list[str], table: dict[str, str], stable: dict[str, str]) -> list[str]:
    """The problems: each undefined Py symbol that is neither stable (3.9) nor a Stable39 row,
    and each Runtime row that is linked anyway."""
    problems = []
    for sym in undefined:
        how = table.get(sym)
        if how == "Runtime":
            problems.append(f"{sym}: a Runtime row of the ABI table, but linked (it must be looked up, with its fallback)")
        elif sym not in stable:
            problems.append(f"{sym}: not in CPython's stable ABI for {TARGET[0]}.{TARGET[1]} and not in the ABI table of {CAPI.name}")
    return problems


def undefined_py_symbols(so: Path) -> list[str]:
    if not shutil.which("nm"):
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run(["nm", "-D", "--undefined-only", str(so)], capture_output=True, text=True, check=True).stdout
    names = [line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()]
    return sorted(n for n in names if n.startswith(("Py", "_Py")))


@pytest.fixture(scope="module")
def native_so(dist_dir) -> Path:
    [so] = (dist_dir / "ferrotel").glob("_native*.so")
    return so


def test_data_file_is_the_stable_abi():
    """The checked-in list has what the stable ABI's history says (spot checks, with versions)."""
    every = stable_abi(upto=(99, 0))
    assert len(every) > 800
    assert every["PyType_FromSpec"] == "3.2"
    assert every["PyCMethod_New"] == "3.9"
    assert every["PyUnicode_AsUTF8AndSize"] == "3.10"
    assert every["PyObject_Vectorcall"] == "3.12"
    assert "PyContextVar_Set" not in every and "PyMethod_New" not in every and "PyObject_VectorcallDict" not in every


def test_every_undefined_python_symbol_is_stable_abi_or_in_the_table(native_so):
    undefined = undefined_py_symbols(native_so)
    assert len(undefined) > 50, undefined  # pyo3's own: a sanity check that nm read the library
    problems = check(undefined, abi_table(), stable_abi())
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_linked_symbol_outside_the_stable_abi():
    table, stable = abi_table(), stable_abi()
    problems = check(["PyList_New", "PyContextVar_Set", "PyUnicode_AsUTF8", "_Py_NegativeRefcount"], table, stable)
    assert [p.split(":")[0] for p in problems] == ["PyContextVar_Set", "PyUnicode_AsUTF8", "_Py_NegativeRefcount"]


def test_table_rows_are_what_they_claim():
    table, stable = abi_table(), stable_abi()
    for name, how in table.items():
        if how == "Stable39":
            assert name in stable, f"{name} is marked Stable39 but is not in the 3.9 stable ABI"
        elif how == "Runtime":
            assert name not in stable, f"{name} is in the 3.9 stable ABI: link it (Stable39)"
        else:
            assert how == "Constant", (name, how)


def header_constants(include: Path) -> dict[str, int]:
    text = (include / "methodobject.h").read_text()
    return {m.group(1): int(m.group(2), 16) for m in re.finditer(r"#\s*define\s+(METH_\w+)\s+0x([0-9a-fA-F]+)", text)}


def interpreters_with_headers() -> list[Path]:
    found = sorted(Path("/usr/include").glob("python3.*/methodobject.h"))
    root = Path(os.environ.get("FERROTEL_SID_ROOT", "/var/cache/ferrotel/sid-root"))
    found += sorted(root.glob("usr/include/python3.*/methodobject.h"))
    found += sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob("versions/3.*/include/python3.*/methodobject.h"))
    return [p.parent for p in found]


def test_compiled_in_constants_match_every_interpreters_headers():
    """METH_FASTCALL and METH_KEYWORDS are compiled in (pyo3-ffi names METH_FASTCALL only for
    3.10+ under abi3): the value must be the one of every CPython whose headers are at hand."""
    src = CAPI.read_text()
    ours = {"METH_FASTCALL": int(re.search(r"pub const METH_FASTCALL: c_int = 0x([0-9a-fA-F]+);", src).group(1), 16), "METH_KEYWORDS": 0x0002}
    includes = interpreters_with_headers()
    if not includes:
        pytest.skip("no CPython headers on this machine (python3-dev)")
    for include in includes:
        theirs = header_constants(include)
        for name, value in ours.items():
            assert theirs.get(name) == value, f"{include}: {name} is {theirs.get(name)!r}, ferrotel compiles in {value:#06x}"


def lock_version(package: str) -> str:
    lock = (REPO / "Cargo.lock").read_text()
    m = re.search(r'\[\[package\]\]\nname = "%s"\nversion = "([^"]+)"' % re.escape(package), lock)
    assert m, f"{package} not in Cargo.lock"
    return m.group(1)


def test_pyo3_is_pinned_to_the_reviewed_version():
    """method.rs uses pyo3's private `impl_::trampoline`: a pyo3 upgrade must fail here (and in
    CI), not in production. To upgrade: re-read method.rs against the new pyo3's trampoline,
    then move the pin in Cargo.toml and `PYO3_REVIEWED` in capi.rs together."""
    reviewed = re.search(r'pub const PYO3_REVIEWED: &str = "([^"]+)";', CAPI.read_text()).group(1)
    pin = re.search(r'^pyo3 = \{ version = "=([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M)
    assert pin, "Cargo.toml must pin pyo3 exactly (version = \"=X.Y.Z\"): method.rs uses its private impl_::trampoline"
    assert pin.group(1) == reviewed, f"Cargo.toml pins pyo3 {pin.group(1)}, capi.rs says {reviewed} was reviewed"
    for crate in ("pyo3", "pyo3-ffi", "pyo3-macros", "pyo3-build-config"):
        assert lock_version(crate) == reviewed, f"Cargo.lock has {crate} {lock_version(crate)}, reviewed: {reviewed}"


def test_pyo3_private_modules_are_used_only_where_reviewed():
    users = sorted(
        str(p.relative_to(REPO)) for p in (REPO / "src").rglob("*.rs") if re.search(r"pyo3::impl_::|pyo3::internal", p.read_text())
    )
    assert users == ["src/hooks/method.rs"], users


def test_built_library_reports_the_reviewed_pyo3(native_so, operator_install):
    result = run_in(Path(sys.executable), operator_install, "from ferrotel import _native; print(_native._PYO3_REVIEWED)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == abi_table_reviewed()


def abi_table_reviewed() -> str:
    return re.search(r'pub const PYO3_REVIEWED: &str = "([^"]+)";', CAPI.read_text()).group(1)


CAPI_REPORT = "import json; from ferrotel import _native; print(json.dumps(dict(_native._capi())))"


def run_in(python: Path, install: Path, code: str) -> subprocess.CompletedProcess:
    env = clean_env(PYTHONPATH=operator_pythonpath(install), OTEL_TRACES_EXPORTER="none", PYTHONNOUSERSITE="1")
    return subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def pyenv_pythons() -> list[tuple[str, Path]]:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    out = []
    for minor in range(9, 14):
        found = sorted(root.glob(f"3.{minor}.*/bin/python3.{minor}")) if root.is_dir() else []
        if found:
            out.append((f"3.{minor}", found[-1]))
    return out


def test_runtime_functions_resolve_on_every_interpreter_at_hand(operator_install):
    """Each Runtime row is found in every CPython here (the fallbacks are for interpreters that
    do not export one); PyObject_Vectorcall is an exported function from 3.11 on only, PyIter_Send
    exists from 3.10 on."""
    table = abi_table()
    runtime = sorted(n for n, how in table.items() if how == "Runtime")
    pythons = [("host", Path(sys.executable))] + pyenv_pythons()
    for label, python in pythons:
        result = run_in(python, operator_install, CAPI_REPORT)
        assert result.returncode == 0, (label, result.stderr)
        report = json.loads(result.stdout)
        assert sorted(report) == runtime, (label, report)
        version = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True).stdout.strip()
        v = tuple(map(int, version.split(".")))
        expected_fallback = ({"PyObject_Vectorcall"} if v < (3, 11) else set()) | ({"PyIter_Send"} if v < (3, 10) else set())
        assert {n for n, how in report.items() if how == "fallback"} == expected_fallback, (label, version, report)
