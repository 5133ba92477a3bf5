"""The Dockerfile cannot be built here (no Docker engine), so it is kept honest instead:

- it runs `make dist` (the command these tests run on) for both trees, and the paths it copies
  between stages are the ones `make dist` produces (DIST from the Makefile);
- the image's file system is assembled by docker/layout.sh, which runs here on the built tree: the
  Operator's paths, the injector's layout, files readable by any user, the Operator's `cp -r` of it
  gives back exactly the built tree;
- nothing the build needs is excluded by .dockerignore;
- the musl build is exercised by a cross-compile check (`cargo check --target <arch>-unknown-linux-musl`:
  type-checks the crate and its dependencies against musl's libc bindings; it does not link -- the
  link happens only in the image's Alpine stage).
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
BOOTSTRAP = "opentelemetry/instrumentation/auto_instrumentation"
MUSL_TARGET = f"{platform.machine()}-unknown-linux-musl"


def makefile_dist() -> str:
    match = re.search(r"^DIST\s*:?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    assert match, "DIST not found in the Makefile"
    return match.group(1)


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """stage name (or "final") -> [(INSTRUCTION, arguments)], continuation lines joined."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append(current + raw)
        current = ""
    stages: dict[str, list[tuple[str, str]]] = {}
    name = None
    for line in lines:
        instruction, _, args = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else "final"
            stages[name] = [("FROM", words[0])]
        elif name is not None:
            stages[name].append((instruction, args.strip()))
    return stages


def instructions(stage: list[tuple[str, str]], kind: str) -> list[str]:
    return [args for instruction, args in stage if instruction == kind]


def copy_from(stage: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(source stage, source path, destination) of each COPY --from=... in a stage."""
    out = []
    for args in instructions(stage, "COPY"):
        words = shlex.split(args)
        flags = {w.split("=", 1)[0]: w.split("=", 1)[1] for w in words if w.startswith("--") and "=" in w}
        paths = [w for w in words if not w.startswith("--")]
        if "--from" in flags:
            out.append((flags["--from"], paths[0], paths[1]))
    return out


@pytest.fixture(scope="module")
def stages():
    return dockerfile_stages()


# --------------------------------------------------------------------------- the Dockerfile


def test_both_trees_are_built_with_make_dist(stages):
    glibc, musl = stages["build-glibc"], stages["build-musl"]
    assert instructions(glibc, "RUN")[-1] == "make dist"
    assert instructions(musl, "RUN")[-1] == "make dist DIST=dist/autoinstrumentation-musl"
    assert instructions(glibc, "WORKDIR") == ["/src"] == instructions(musl, "WORKDIR")
    assert "COPY . ." in [f"COPY {a}" for a in instructions(glibc, "COPY")]
    assert "COPY . ." in [f"COPY {a}" for a in instructions(musl, "COPY")]
    assert any("-C target-feature=-crt-static" in env for env in instructions(musl, "ENV"))
    assert "alpine" in musl[0][1], "the musl tree is built on a musl distribution"


def test_stages_copy_what_make_dist_produces(stages):
    dist = makefile_dist()
    copies = {source_stage: (path, dest) for source_stage, path, dest in copy_from(stages["layout"])}
    assert copies["build-glibc"][0].rstrip("/") == f"/src/{dist}"
    assert copies["build-musl"][0].rstrip("/") == "/src/dist/autoinstrumentation-musl"
    [layout_run] = instructions(stages["layout"], "RUN")
    assert shlex.split(layout_run) == [
        "sh", "/layout.sh", copies["build-glibc"][1].rstrip("/"), copies["build-musl"][1].rstrip("/"), "/out"
    ]  # fmt: skip
    assert ("docker/layout.sh /layout.sh") in instructions(stages["layout"], "COPY")
    assert copy_from(stages["final"]) == [("layout", "/out/", "/")]


def test_final_stage_is_tiny_and_has_cp(stages):
    base = stages["final"][0][1]
    assert base.startswith("busybox:"), base
    assert not instructions(stages["final"], "RUN")
    assert not instructions(stages["final"], "USER"), "the init container runs as the pod decides"


# --------------------------------------------------------------------------- the image's file system


@pytest.fixture(scope="module")
def image_root(dist_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("image") / "root"
    subprocess.run(["sh", str(REPO / "docker" / "layout.sh"), str(dist_dir), str(dist_dir), str(out)], check=True, timeout=60)
    return out


def relative_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_image_has_the_operator_paths(image_root):
    for tree in ("autoinstrumentation", "autoinstrumentation-musl"):
        assert (image_root / tree / BOOTSTRAP / "sitecustomize.py").is_file()
        assert (image_root / tree / "ferrotel" / "__init__.py").is_file()
        assert list((image_root / tree / "ferrotel").glob("_native*.so")), "the extension module"
        assert (image_root / tree / "bin" / "ferrotel-run").is_file()
        # a namespace portion: never shadows the app's own opentelemetry packages
        assert not list((image_root / tree / "opentelemetry").rglob("__init__.py"))


def test_image_files_are_readable_by_any_user(image_root):
    for path in image_root.rglob("*"):
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        assert mode & stat.S_IROTH, path
        if path.is_dir():
            assert mode & stat.S_IXOTH, path


def test_operator_copy_of_the_image_is_the_built_tree(image_root, dist_dir, tmp_path):
    target = tmp_path / "otel-auto-instrumentation-python"
    target.mkdir()
    subprocess.run(["cp", "-r", f"{image_root / 'autoinstrumentation'}/.", str(target)], check=True)
    assert relative_files(target) == relative_files(dist_dir)


def test_injector_layout(image_root):
    prefix = image_root / "injector"
    for flavour, tree in (("glibc", "autoinstrumentation"), ("musl", "autoinstrumentation-musl")):
        link = prefix / flavour
        assert link.is_symlink() and not os.path.isabs(os.readlink(link)), "relative: works wherever the image is mounted"
        assert (link / "sitecustomize.py").is_file()
        assert os.path.realpath(link) == os.path.realpath(image_root / tree / BOOTSTRAP)


def test_layout_rejects_a_missing_tree(tmp_path):
    result = subprocess.run(
        ["sh", str(REPO / "docker" / "layout.sh"), str(tmp_path / "nope"), str(tmp_path / "nope"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "not a ferrotel tree" in result.stderr


# --------------------------------------------------------------------------- the build context


def dockerignore_patterns() -> list[re.Pattern]:
    patterns = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), "exceptions are not handled by this check"
        regex = re.escape(line.strip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        patterns.append(re.compile(regex + "(?:/.*)?"))
    return patterns


def excluded(path: str, patterns: list[re.Pattern]) -> bool:
    return any(p.fullmatch(path) for p in patterns)


def test_build_context_keeps_what_the_build_needs():
    patterns = dockerignore_patterns()
    needed = [
        "Makefile", "Cargo.toml", "Cargo.lock", "pyproject.toml", "tests/requirements.txt",
        "docker/layout.sh", "docker/ferrotel-run.sh", "python/sitecustomize.py", "tests/app/app.py",
    ]  # fmt: skip
    needed += [str(p.relative_to(REPO)) for d in ("src", "python", "preload") for p in (REPO / d).rglob("*") if p.is_file()]
    needed = [p for p in needed if "/target/" not in p and "__pycache__" not in p]
    assert not [p for p in needed if excluded(p, patterns)], "excluded from the Docker build context"
    for path in ("target/release/x", "dist/autoinstrumentation/ferrotel/x.py", ".venv/bin/python", ".git/HEAD"):
        assert excluded(path, patterns), path


# --------------------------------------------------------------------------- musl


def test_musl_cross_compile_check():
    if shutil.which("cargo") is None or shutil.which("rustup") is None:
        pytest.skip("no cargo/rustup on this machine")
    installed = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True).stdout.split()
    if MUSL_TARGET not in installed:
        pytest.skip(f"Rust target {MUSL_TARGET} not installed (`make test` runs `rustup target add {MUSL_TARGET}`)")
    env = dict(os.environ, PYO3_PYTHON=sys.executable)
    result = subprocess.run(
        ["cargo", "check", "--quiet", "--lib", "--target", MUSL_TARGET, "--manifest-path", str(REPO / "Cargo.toml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-5000:]


# --------------------------------------------------------------------------- make


def test_make_dist_is_a_file_target_up_to_date_after_the_build(dist_dir):
    """`make test` and `make demo` depend on `make dist`; once built, a second make does nothing
    (the tree is newer than every source)."""
    if dist_dir != REPO / "dist" / "autoinstrumentation":
        pytest.skip(f"FERROTEL_DIST points elsewhere ({dist_dir}): the Makefile's tree is not the one under test")
    dry = subprocess.run(["make", "-n", "dist"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "pgo/build.sh" not in dry.stdout and "maturin" not in dry.stdout, "make dist would rebuild:\n" + dry.stdout


def test_preload_builds_where_cargo_puts_its_output(tmp_path):
    """Rust developers often share one CARGO_TARGET_DIR: the library is taken from there."""
    if shutil.which("cargo") is None:
        pytest.skip("no cargo on this machine")
    target = tmp_path / "shared-target"
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    result = subprocess.run(
        ["make", "--no-print-directory", "preload"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    built = target / "release" / "libferrotel_preload.so"
    assert built.is_file()
    assert f"built {built}" in result.stdout
