"""``benchmarks/engine.py --plugin``: the same stack through the plugin, installed as a user installs it.

The plugin kind runs ``benchmarks/programs/plugin`` (``pulumi_oppie.PhoneAgent``, the SDK generated from the
schema, one per entry of ``agents.json``, the same arguments as ``../agents``) with the plugin installed from the
release's tarball by ``pulumi plugin install resource oppie <version> --file`` into the stack's own PULUMI_HOME, and
the SDK from the release's wheel: both from ``make dist``'s output (``--dist``, default ``dist/``), never from the
checkout. The plugin runs with the Python it was packaged for, found on PATH (the checkout's .venv, whose site-packages
the launcher leaves out), so it imports only what its tarball holds.

The goals are the issue's: the plugin no slower than the dynamic resource on every command, and its ``preview``
within 1.10 x the no-op floor.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from _report import Row
from oppie_pulumi_testing.cli import Project

__all__ = ["PLUGIN_GOALS", "Release", "plugin_rows"]

ROOT = Path(__file__).resolve().parent.parent
# command -> (at most this x the dynamic resource, at most this x the no-op floor, or None)
PLUGIN_GOALS: dict[str, tuple[float, float | None]] = {
    "preview": (1.0, 1.10),
    "up": (1.0, None),
    "refresh": (1.0, None),
}


@dataclass(frozen=True)
class Release:
    """The release artefacts the plugin kind installs: the plugin's tarball and the Python SDK, unpacked."""

    version: str
    tarball: Path
    site: Path  # the SDK's wheel, installed here (pip --target); first on the program's PYTHONPATH

    @classmethod
    def from_dist(cls, dist: Path, folder: Path) -> Release:
        """The artefacts of ``make dist`` in ``dist``; fails saying how to build them when they are missing."""
        version = str(runpy.run_path(str(ROOT / "oppie_pulumi" / "_version.py"))["__version__"])
        tarballs = sorted(dist.glob(f"pulumi-resource-oppie-v{version}-*.tar.gz"))
        wheels = sorted(dist.glob(f"pulumi_oppie-{version}-*.whl"))
        if not tarballs or not wheels:
            raise SystemExit(f"--plugin needs the release artefacts of {version} in {dist}: run `make dist` first")
        site = folder / "sdk-site"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheels[-1])],
            check=True,
        )
        return cls(version, tarballs[-1], site)

    def install(self, project: Project) -> None:
        """``pulumi plugin install resource oppie <version> --file <tarball>`` in the project's PULUMI_HOME."""
        command = [str(project.bin / "pulumi"), "plugin", "install", "resource", "oppie", self.version]
        subprocess.run([*command, "--file", str(self.tarball)], env=project.env, check=True, capture_output=True)


def plugin_rows(
    sizes: Sequence[int],
    median: Callable[[int, str, str], float],
    api_calls: Callable[[int, str], int],
    kinds: tuple[str, str, str],
) -> list[Row]:
    """One row per stack size and command: the plugin against the dynamic resource and the no-op floor.

    ``median(n, command, kind)`` is the median of a command's runs, ``api_calls(n, command)`` the most API calls a
    run of the plugin made; ``kinds`` names (plugin, dynamic, floor).
    """
    plugin, dynamic, floor = kinds
    rows = []
    for n in sizes:
        for command, (dynamic_goal, floor_goal) in PLUGIN_GOALS.items():
            ours, theirs, bottom = median(n, command, plugin), median(n, command, dynamic), median(n, command, floor)
            met = ours <= dynamic_goal * theirs and (floor_goal is None or ours <= floor_goal * bottom)
            goal = f"<= {dynamic_goal:g} x dynamic" + (f", <= {floor_goal:g} x floor" if floor_goal else "")
            rows.append(
                Row(
                    f"plugin: pulumi {command}, {n} agents, no change",
                    f"{ours:.2f} s, {api_calls(n, command)} API calls (dynamic {theirs:.2f} s)",
                    f"{bottom:.2f} s",
                    f"{ours / theirs:.2f} x dynamic, {ours / bottom:.2f} x floor",
                    goal,
                    met,
                    {"n": n, "plugin": ours, "dynamic": theirs, "floor": bottom},
                    key=f"plugin-{command}-{n}",
                )
            )
    return rows
