"""The release, installed as a team installs it: nothing from the checkout but what ``make dist`` built (issue 20).

In a temporary directory outside the checkout: the release artefacts built by ``make dist``'s script with
``PLUGIN_DOWNLOAD_URL`` pointing at a local HTTP server that serves them (it stands in for the release page), a
fresh virtualenv with the two wheels (the dependencies come from the package index, as for any team), a fresh npm
project with the npm tarball, and, per program, a fresh ``PULUMI_HOME`` with the engine's automatic plugin
acquisition on (``make`` and the other tests turn it off). Four programs (tests/programs/release), each against the
sandbox: up, a no-change up that writes nothing, destroy that leaves nothing:

- Python on the dynamic ``PhoneAgent`` (the oppie-pulumi wheel; no plugin);
- Python on the generated SDK (``pulumi_oppie``), TypeScript on the npm SDK (``@oppie/pulumi-oppie``) and YAML with
  the release's package declaration: none installs the plugin; the engine downloads its tarball from the server,
  at the URL the SDK or the declaration carries, the first time the program uses it.

The sandbox runs in the test's process from the checkout, as the API would run elsewhere. The language hosts and
the CLI are the pinned build's (tools/pulumi), like the rest of the real-engine tier.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from oppie_pulumi_testing.cli import Project

from oppie_pulumi import __version__
from oppie_pulumi.sandbox import SandboxServer

from .realcli import PROGRAMS, ROOT, VENV, pulumi_bin
from .support import TOKEN
from .test_plugin_yaml import writes, yaml_host_bin

pytestmark = pytest.mark.realcli

RELEASE_PROGRAMS = PROGRAMS / "release"
DIST_SCRIPT = ROOT / "tools" / "release" / "dist.sh"
# Named as the engine asks for it (plugin/package.sh): this machine's OS and architecture, in Go's words.
_OS = {"linux": "linux", "darwin": "darwin"}.get(sys.platform, sys.platform)
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
PLUGIN_TARBALL = f"pulumi-resource-oppie-v{__version__}-{_OS}-{_ARCH}.tar.gz"
# The TypeScript project's own dependencies besides the SDK, as the TypeScript example pins them.
NODE_DEPENDENCIES = {"@pulumi/pulumi": "3.270.0"}
NODE_DEV_DEPENDENCIES = {"@types/node": "20.19.9", "ts-node": "10.9.2", "typescript": "5.9.3"}
# Building the release (~1 min), a virtualenv and an npm project (~40 s, side by side), then a program's three
# commands (~10-30 s): the first test pays for the module's fixture.
TIMEOUT = 420


def _unavailable(reason: str) -> None:
    """Skip, except under ``CI=true``, where it fails (as tests/realcli.py does for the CLI)."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class ReleasePage(ThreadingHTTPServer):
    """A local stand-in for the release page: serves a folder over HTTP and remembers every path asked for."""

    def __init__(self, folder: Path) -> None:
        self.requested: list[str] = []
        page = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                page.requested.append(self.path)

        super().__init__(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@dataclass
class Release:
    """What the module's tests install from: the built artefacts, their page, a virtualenv, an npm project."""

    dist: Path
    page: ReleasePage
    venv: Path
    typescript: Path  # tests/programs/release/typescript with its package.json and node_modules
    bin_dir: Path  # the CLI, with the YAML and Node.js language hosts beside it


def _run(command: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _tools() -> Path:
    """The CLI's folder, with the YAML and Node.js hosts beside it; Node.js and npm on PATH."""
    bin_dir = pulumi_bin()
    yaml_host_bin()  # builds the YAML host and links it beside the CLI (tools/pulumi-yaml/install.sh)
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing or not (bin_dir / "pulumi-language-nodejs").exists():
        _unavailable(f"the release test needs node, npm and pulumi-language-nodejs (missing: {missing or bin_dir})")
    return bin_dir


def _npm_project(folder: Path, dist: Path) -> subprocess.Popen[str]:
    """The TypeScript program with a package.json naming the release's npm tarball; ``npm install`` started."""
    shutil.copytree(RELEASE_PROGRAMS / "typescript", folder)
    (tgz,) = dist.glob("oppie-pulumi-oppie-*.tgz")
    package = {
        "name": "release-typescript",
        "private": True,
        "main": "index.ts",
        "dependencies": {"@oppie/pulumi-oppie": f"file:{tgz}", **NODE_DEPENDENCIES},
        "devDependencies": NODE_DEV_DEPENDENCIES,
    }
    (folder / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    command = ["npm", "install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"]
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    bin_dir = _tools()
    tmp = tmp_path_factory.mktemp("release")
    dist = tmp / "dist"
    dist.mkdir()
    page = ReleasePage(dist)
    threading.Thread(target=page.serve_forever, name="release-page", daemon=True).start()
    try:
        # What `make dist PLUGIN_DOWNLOAD_URL=...` runs, without make's `setup` (the checkout's venv is ready).
        path = os.pathsep.join([str(bin_dir), os.environ["PATH"]])
        env = {**os.environ, "PATH": path, "PYTHON": str(VENV / "bin" / "python")}
        _run([str(DIST_SCRIPT), str(dist), page.url], "tools/release/dist.sh", cwd=ROOT, env=env, timeout=600)
        npm = _npm_project(tmp / "typescript", dist)
        venv = tmp / "venv"
        _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        wheels = [str(next(dist.glob(f"{name}-{__version__}-*.whl"))) for name in ("oppie_pulumi", "pulumi_oppie")]
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *wheels], "pip install", timeout=600)
        output, _ = npm.communicate(timeout=600)
        assert npm.returncode == 0, f"npm install failed:\n{output[-3000:]}"
        yield Release(dist, page, venv, tmp / "typescript", bin_dir)
    finally:
        page.shutdown()
        page.server_close()


def _project(release: Release, source: Path, tmp: Path, sandbox: SandboxServer, **kwargs: Any) -> Project:
    """A copy of a release program with a fresh PULUMI_HOME and state, automatic plugin acquisition on."""
    project = Project(source, tmp, bin_dir=release.bin_dir, python=release.venv / "bin" / "python", **kwargs)
    # The engine may fetch what a program needs: that is what is tested. The CLI's own update check stays off.
    project.env.pop("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION")
    project.configure(sandbox.url, TOKEN)
    return project


def _up_again_and_destroy(project: Project, sandbox: SandboxServer, name: str) -> None:
    """up: one agent, as the outputs say; a no-change up writes nothing; destroy leaves nothing."""
    project.up()
    [agent] = sandbox.agents()
    assert agent["name"] == name
    outputs = project.outputs()
    assert (outputs["id"], outputs["phone_number"]) == (agent["id"], agent["phone_number"])
    sandbox.reset_stats()
    project.run("up", "--yes", "--expect-no-changes")
    assert writes(sandbox) == [], "a no-change up must not write to the API"
    project.destroy()
    assert sandbox.agents() == []


def _downloads(release: Release) -> int:
    """How many times the release page served the plugin's tarball."""
    return release.page.requested.count(f"/{PLUGIN_TARBALL}")


def _plugin_installed(project: Project) -> bool:
    """Whether the plugin is in the project's own PULUMI_HOME (the harness's ``<tmp>/home``)."""
    home = project.dir.parent / "home"
    return (home / "plugins" / f"resource-oppie-v{__version__}" / "pulumi-resource-oppie").exists()


@pytest.mark.timeout(TIMEOUT)
def test_a_python_program_on_the_dynamic_resource_runs_from_the_wheel(
    release: Release, sandbox: SandboxServer, tmp_path: Path
) -> None:
    project = _project(release, RELEASE_PROGRAMS / "dynamic", tmp_path, sandbox, virtualenv=release.venv)
    _up_again_and_destroy(project, sandbox, "Release line (dynamic)")
    assert not _plugin_installed(project), "the dynamic resource needs no plugin"


@pytest.mark.timeout(TIMEOUT)
def test_a_python_program_on_the_sdk_gets_the_plugin_from_the_release_page(
    release: Release, sandbox: SandboxServer, tmp_path: Path
) -> None:
    downloads = _downloads(release)
    project = _project(release, RELEASE_PROGRAMS / "sdk-python", tmp_path, sandbox, virtualenv=release.venv)
    _up_again_and_destroy(project, sandbox, "Release line (Python SDK)")
    assert _downloads(release) == downloads + 1 and _plugin_installed(project), release.page.requested


@pytest.mark.timeout(TIMEOUT)
def test_a_yaml_program_gets_the_plugin_through_the_package_declaration(
    release: Release, sandbox: SandboxServer, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    shutil.copytree(RELEASE_PROGRAMS / "yaml", source)
    shutil.copy2(release.dist / f"oppie-{__version__}.yaml", source)  # the YAML "SDK", as a user drops it in
    downloads = _downloads(release)
    project = _project(release, source, tmp_path, sandbox)
    _up_again_and_destroy(project, sandbox, "Release line (YAML)")
    assert _downloads(release) == downloads + 1 and _plugin_installed(project), release.page.requested


@pytest.mark.timeout(TIMEOUT)
def test_a_typescript_program_on_the_npm_sdk_gets_the_plugin_from_the_release_page(
    release: Release, sandbox: SandboxServer, tmp_path: Path
) -> None:
    files = ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts"]  # node_modules is linked, not copied
    project = _project(release, release.typescript, tmp_path, sandbox, files=files)
    (project.dir / "node_modules").symlink_to(release.typescript / "node_modules")
    downloads = _downloads(release)
    _up_again_and_destroy(project, sandbox, "Release line (TypeScript)")
    assert _downloads(release) == downloads + 1 and _plugin_installed(project), release.page.requested


@pytest.mark.timeout(TIMEOUT)
def test_every_artefact_carries_the_one_version_and_the_sdks_the_download_url(release: Release) -> None:
    dist, url = release.dist, release.page.url
    names = sorted(path.name for path in dist.iterdir())
    assert names == sorted(
        [
            f"oppie_pulumi-{__version__}-py3-none-any.whl",
            f"oppie_pulumi-{__version__}.tar.gz",
            PLUGIN_TARBALL,
            f"pulumi_oppie-{__version__}-py3-none-any.whl",
            f"oppie-pulumi-oppie-{__version__}.tgz",
            f"oppie-{__version__}.yaml",
            f"pulumi-oppie-schema-v{__version__}.json",
        ]
    )
    schema = json.loads((dist / f"pulumi-oppie-schema-v{__version__}.json").read_text())
    assert (schema["name"], schema["version"], schema["pluginDownloadURL"]) == ("oppie", __version__, url)
    with zipfile.ZipFile(dist / f"pulumi_oppie-{__version__}-py3-none-any.whl") as wheel:
        plugin = json.loads(wheel.read("pulumi_oppie/pulumi-plugin.json"))
        assert f"Version: {__version__}" in wheel.read(f"pulumi_oppie-{__version__}.dist-info/METADATA").decode()
    assert plugin == {"resource": True, "name": "oppie", "version": __version__, "server": url}
    with tarfile.open(dist / f"oppie-pulumi-oppie-{__version__}.tgz") as npm:
        manifest = npm.extractfile("package/package.json")
        assert manifest is not None
        package = json.load(manifest)
    assert (package["name"], package["version"]) == ("@oppie/pulumi-oppie", __version__)
    assert package["pulumi"] == {"resource": True, "name": "oppie", "version": __version__, "server": url}
    declaration = yaml.safe_load((dist / f"oppie-{__version__}.yaml").read_text())
    assert declaration == {"packageDeclarationVersion": 1, "name": "oppie", "version": __version__, "downloadUrl": url}
    major, minor = sys.version_info[:2]
    with tarfile.open(dist / PLUGIN_TARBALL) as plugin_tarball:
        members = plugin_tarball.getnames()
        python_version = plugin_tarball.extractfile("./python-version")
        assert python_version is not None and python_version.read().decode().strip() == f"{major}.{minor}"
    assert f"./lib/oppie_pulumi-{__version__}.dist-info/METADATA" in members
    # Byte-compiled: the plugin's start reads .pyc files instead of compiling every module (docs/plugin.md).
    assert f"./lib/oppie_pulumi/provider/__pycache__/server.cpython-{major}{minor}.pyc" in members
