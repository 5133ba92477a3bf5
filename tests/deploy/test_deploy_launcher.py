"""The launcher `ferrotel-run COMMAND...`: our bootstrap directory first on PYTHONPATH, the user's
entries kept, the tree's root last, then exec. Two forms: the shipped tree's POSIX sh script
``bin/ferrotel-run`` (found through a symlink on PATH, as users install it) and the console script of
a pip installation (``ferrotel.launcher:main``)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.operator import PYTHONPATH_PREFIX, clean_env, install_like_operator

REPO = Path(__file__).resolve().parents[2]
USER_PATH = "/srv/app/lib:/srv/app/vendor"

SHOW = r"""
import json, os, sys
boot = sys.modules.get("ferrotel._bootstrap")
print(json.dumps({
    "pythonpath": os.environ.get("PYTHONPATH"),
    "agent_started": bool(boot and boot._started),
    "argv": sys.argv[1:],
}))
"""


@pytest.fixture(scope="module")
def tree(dist_dir, tmp_path_factory) -> Path:
    """The shipped tree where a user unpacked it (a copy, as the Operator's init container makes)."""
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("launcher"))


@pytest.fixture(scope="module")
def path_dir(tree, tmp_path_factory) -> Path:
    """A PATH directory holding a symlink to the tree's launcher (e.g. /usr/local/bin/ferrotel-run)."""
    bindir = tmp_path_factory.mktemp("bin")
    (bindir / "ferrotel-run").symlink_to(tree / "bin" / "ferrotel-run")
    return bindir


def env_with(path_dir: Path | None = None, pythonpath: str | None = USER_PATH) -> dict:
    env = clean_env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    if path_dir is not None:
        env["PATH"] = f"{path_dir}{os.pathsep}{env['PATH']}"
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return env


def run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def expected_pythonpath(tree: Path, user: str | None = USER_PATH) -> str:
    return os.pathsep.join([str(tree / PYTHONPATH_PREFIX)] + ([user] if user else []) + [str(tree)])


def shown(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_tree_has_the_sh_launcher(tree):
    launcher = tree / "bin" / "ferrotel-run"
    assert launcher.read_text().startswith("#!/bin/sh\n")
    assert os.access(launcher, os.X_OK)
    assert launcher.stat().st_mode & 0o005 == 0o005, "runnable by any user"
    assert sorted(p.name for p in (tree / "bin").iterdir()) == ["ferrotel-run"], "no pip-generated scripts"


def test_sh_launcher_sets_pythonpath_and_the_agent_starts(tree, path_dir):
    state = shown(run(["ferrotel-run", sys.executable, "-c", SHOW, "--flag", "x y"], env_with(path_dir)))
    assert state["pythonpath"] == expected_pythonpath(tree)
    assert state["agent_started"] is True
    assert state["argv"] == ["--flag", "x y"], "arguments passed through untouched"


def test_sh_launcher_without_user_pythonpath(tree, path_dir):
    state = shown(run(["ferrotel-run", sys.executable, "-c", SHOW], env_with(path_dir, pythonpath=None)))
    assert state["pythonpath"] == expected_pythonpath(tree, user=None)
    assert state["agent_started"] is True


def test_sh_launcher_nests_without_duplicates(tree, path_dir):
    state = shown(run(["ferrotel-run", "--", "ferrotel-run", sys.executable, "-c", SHOW], env_with(path_dir)))
    assert state["pythonpath"] == expected_pythonpath(tree)


def test_sh_launcher_execs(tree, path_dir):
    # exec, not a child: the command's pid is the launcher's, its exit status is returned as is
    result = run(["ferrotel-run", "sh", "-c", 'echo "$$ $PPID"; exit 7'], env_with(path_dir))
    assert result.returncode == 7
    launcher = subprocess.Popen(
        ["ferrotel-run", "sh", "-c", "echo $$"], env=env_with(path_dir), stdout=subprocess.PIPE, text=True
    )
    out, _ = launcher.communicate(timeout=30)
    assert int(out) == launcher.pid


def test_sh_launcher_errors(path_dir):
    usage = run(["ferrotel-run"], env_with(path_dir))
    assert usage.returncode == 2 and "usage: ferrotel-run" in usage.stderr
    assert run(["ferrotel-run", "--help"], env_with(path_dir)).returncode == 0
    missing = run(["ferrotel-run", "no-such-command-ferrotel"], env_with(path_dir))
    assert missing.returncode == 1
    assert missing.stderr == "ferrotel-run: error: no-such-command-ferrotel: command not found (or not executable)\n"


# --------------------------------------------------------------------------- one behaviour, two launchers
# opentelemetry-instrument (argparse): --help and --version print to stdout and exit 0; no command
# or an unknown option prints the usage and an error to stderr and exits 2; a command that cannot
# be run exits 1. Both launchers answer alike, word for word.


def pip_launcher(tree: Path) -> list[str]:
    """What pip's generated `ferrotel-run` runs: ferrotel.launcher.main() from the install."""
    return [sys.executable, "-c", "import sys; from ferrotel.launcher import main; sys.exit(main())"]


def launchers(tree: Path, path_dir: Path):
    env = env_with(path_dir)
    pip_env = dict(env, PYTHONPATH=str(tree))  # ferrotel importable, as from site-packages
    return [(["ferrotel-run"], env), (pip_launcher(tree), pip_env)]


CASES = {  # name -> (arguments, exit code, stdout expected to start with, stderr expected)
    "help": (["--help"], 0, "usage: ferrotel-run [-h] [--version] [--] COMMAND [ARG...]\n\nRun COMMAND", ""),
    "h": (["-h"], 0, "usage: ferrotel-run ", ""),
    "version": (["--version"], 0, "ferrotel-run ", ""),
    "no-command": ([], 2, "", "usage: ferrotel-run [-h] [--version] [--] COMMAND [ARG...]\nferrotel-run: error: no COMMAND given (ferrotel-run --help for help)\n"),
    "only-dashes": (["--"], 2, "", "usage: ferrotel-run [-h] [--version] [--] COMMAND [ARG...]\nferrotel-run: error: no COMMAND given (ferrotel-run --help for help)\n"),
    "unknown-option": (["--bogus", "python"], 2, "", "usage: ferrotel-run [-h] [--version] [--] COMMAND [ARG...]\nferrotel-run: error: unknown option --bogus (ferrotel-run --help for help)\n"),
    "unknown-command": (["no-such-command-ferrotel", "x"], 1, "", "ferrotel-run: error: no-such-command-ferrotel: command not found (or not executable)\n"),
    "not-executable": (["{plain_file}"], 1, "", "ferrotel-run: error: {plain_file}: command not found (or not executable)\n"),
}


@pytest.fixture(scope="module")
def plain_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("plain") / "not-a-program.txt"
    path.write_text("not a program\n")
    path.chmod(0o644)
    return str(path)


@pytest.mark.parametrize("case", sorted(CASES))
def test_both_launchers_answer_alike(tree, path_dir, plain_file, case):
    args, code, stdout_start, stderr = CASES[case]
    args = [a.format(plain_file=plain_file) for a in args]
    stderr = stderr.format(plain_file=plain_file)
    results = [run(cmd + args, env) for cmd, env in launchers(tree, path_dir)]
    sh, pip = results
    for result in results:
        assert result.returncode == code, (result.stdout, result.stderr)
        assert result.stdout.startswith(stdout_start), result.stdout
        assert result.stderr == stderr
    assert (sh.stdout, sh.stderr) == (pip.stdout, pip.stderr), "the two launchers differ"


def test_version_is_the_packages(tree, path_dir):
    version = next(tree.glob("ferrotel-*.dist-info")).name[len("ferrotel-"):-len(".dist-info")]
    for cmd, env in launchers(tree, path_dir):
        assert run(cmd + ["--version"], env).stdout == f"ferrotel-run {version}\n"


def test_help_names_the_exit_codes(tree, path_dir):
    text = run(["ferrotel-run", "--help"], env_with(path_dir)).stdout
    assert "exit status: COMMAND's own; 2 for a usage error; 1 when COMMAND cannot be run." in text


@pytest.mark.parametrize("shell", ["dash", "busybox", "bash"])
def test_sh_launcher_is_posix(tree, shell):
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} not installed")
    cmd = [exe, "sh"] if shell == "busybox" else [exe]
    if shell == "bash":
        cmd.append("--posix")
    state = shown(run([*cmd, str(tree / "bin" / "ferrotel-run"), sys.executable, "-c", SHOW], env_with()))
    assert state["pythonpath"] == expected_pythonpath(tree)


# --------------------------------------------------------------------------- the console script


def test_console_script_is_declared():
    text = (REPO / "pyproject.toml").read_text()
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
        assert 'ferrotel-run = "ferrotel.launcher:main"' in section
        return
    assert tomllib.loads(text)["project"]["scripts"]["ferrotel-run"] == "ferrotel.launcher:main"


def test_console_script_entry_point(tree):
    # What pip's generated `ferrotel-run` does: import ferrotel.launcher from the install, call main().
    entry = "import sys; from ferrotel.launcher import main; sys.exit(main())"
    env = env_with()
    env["PYTHONPATH"] = f"{USER_PATH}{os.pathsep}{tree}"  # ferrotel importable, as from site-packages
    state = shown(run([sys.executable, "-c", entry, sys.executable, "-c", SHOW], env))
    assert state["pythonpath"] == expected_pythonpath(tree)
    assert state["agent_started"] is True


def test_console_script_refuses_a_foreign_bootstrap(tmp_path):
    # A site-packages shared with the pure-Python agent has *its* sitecustomize at our path.
    spec = importlib.util.spec_from_file_location("ferrotel_launcher_under_test", REPO / "python" / "ferrotel" / "launcher.py")
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    foreign = tmp_path / "site-packages" / PYTHONPATH_PREFIX
    foreign.mkdir(parents=True)
    (foreign / "__init__.py").write_text("")
    (foreign / "sitecustomize.py").write_text("from opentelemetry.instrumentation.auto_instrumentation import initialize\n")
    assert launcher.bootstrap_dir(str(tmp_path / "site-packages")) is None
    ours = tmp_path / "tree" / PYTHONPATH_PREFIX
    ours.mkdir(parents=True)
    shutil.copy(REPO / "python" / "sitecustomize.py", ours / "sitecustomize.py")
    assert launcher.bootstrap_dir(str(tmp_path / "tree")) == str(ours)
