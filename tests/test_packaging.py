"""The package as a user gets it: ``pip wheel`` builds a wheel that holds only
chatnet's own names, and a plain install of it in a fresh virtualenv gives
working ``twistd chatnode``, ``twistd chatgateway``, ``chatnet-seed``,
``chatnet-bench`` and ``chatnet-client``. The editable install the README
names gives a working ``twistd chatnode`` as well.

The fresh virtualenvs get the dependencies of the virtualenv running the
tests through a ``.pth`` line instead of downloading them again; what this
checks is chatnet's own files, its metadata and its entry points. Building
needs setuptools and wheel from the package index (pyproject.toml's
build-system), as any pip install from source does.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.process  # builds and installs (tests/tiers.py)

REPO = Path(__file__).resolve().parent.parent
COMMAND_TIMEOUT = 60
# what a source tree may hold that is no part of a build
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".cluster", "node_modules",
    "dropin.cache", "_trial_temp", ".cache")


def run(cmd, **kwargs):
    """Run `cmd`; fail the test with its output when it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {result.returncode}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")
    return result.stdout


def pip(*args, **kwargs):
    return run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], **kwargs)


def outside_env():
    """The environment for commands that must not see this checkout."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env


def fresh_venv(path):
    """A virtualenv at `path` (no pip of its own) that sees the dependencies
    installed next to the Python running the tests, and not this checkout."""
    run([sys.executable, "-m", "venv", "--without-pip", str(path)])
    python = path / "bin" / "python"
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               env=outside_env()).strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "shared-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python, Path(site)


def twistd_help(python, command, cwd):
    return run([str(python), "-c", "from twisted.scripts.twistd import run; run()", command, "--help"],
               cwd=cwd, env=outside_env())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel ``pip wheel --no-deps .`` builds, from a copy of the source
    tree (a build in place leaves build/ behind, whose stale files a later
    build would pick up)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    pip("wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(source))
    wheels = list((work / "dist").glob("chatnet-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_only_chatnet_and_its_twistd_plugins(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"chatnet", "twisted"}, sorted(top)
    assert [n for n in names if n.startswith("twisted/")] == ["twisted/plugins/chatnet_plugins.py"]
    # development tools stay in the checkout
    assert not any(n.startswith(("chatnet/localservices", "chatnet/devcluster")) for n in names)
    assert "chatnet/data/profanity.txt" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info.pop()}/entry_points.txt").decode()
    for script in ("chatnet-seed", "chatnet-client", "chatnet-bench"):
        assert script in entry_points
    assert "devcluster" not in entry_points


def test_plain_install_gives_working_commands(wheel, tmp_path):
    python, site = fresh_venv(tmp_path / "venv")
    pip("--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel))
    installed = {p.name for p in site.iterdir()} - {"__pycache__", "shared-dependencies.pth"}
    assert {n for n in installed if not n.endswith(".dist-info")} == {"chatnet", "twisted"}, installed
    assert [p.name for p in (site / "twisted").iterdir()] == ["plugins"]

    where = run([str(python), "-c", "import chatnet; print(chatnet.__file__)"],
                cwd=tmp_path, env=outside_env())
    assert where.startswith(str(site)), where
    assert "Usage: twistd [options] chatnode" in twistd_help(python, "chatnode", tmp_path)
    assert "Usage: twistd [options] chatgateway" in twistd_help(python, "chatgateway", tmp_path)
    bin_dir = python.parent
    for script in ("chatnet-seed", "chatnet-bench", "chatnet-client"):
        out = run([str(bin_dir / script), "--help"], cwd=tmp_path, env=outside_env())
        assert f"usage: {script}" in out


def test_editable_install_from_the_readme_finds_the_twistd_plugins(tmp_path):
    """``pip install -e . --config-settings editable_mode=compat``: the plain
    ``pip install -e .`` maps the packages through an import hook, which
    Twisted's plugin discovery (a scan of sys.path for twisted/plugins) does
    not see."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    python, _site = fresh_venv(tmp_path / "venv")
    pip("--python", str(python), "install", "-q", "--no-deps", "-e", str(source),
        "--config-settings", "editable_mode=compat")
    where = run([str(python), "-c", "import chatnet; print(chatnet.__file__)"],
                cwd=tmp_path, env=outside_env())
    assert where.startswith(str(source)), where
    assert "Usage: twistd [options] chatnode" in twistd_help(python, "chatnode", tmp_path)
