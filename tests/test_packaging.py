"""What the oppie-pulumi wheel ships: the product, never the test machinery (issue 18).

The stand-in engine and the CLI driver live in the oppie-pulumi-testing distribution (tests/harness); the wheel
holds the package only, the sandbox included (it is a product feature: ``oppie-sandbox``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_the_package_and_no_test_machinery(tmp_path: Path) -> None:
    # A copy of the files git knows (as they are in the work tree), so that the build leaves nothing (build/,
    # *.egg-info) in the checkout and sees nothing git ignores.
    source = tmp_path / "source"
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=source,
        check=True,
    )
    (wheel,) = tmp_path.glob("oppie_pulumi-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names if not name.endswith(".dist-info/RECORD")}
    assert {p for p in packages if not p.endswith(".dist-info")} == {"oppie_pulumi"}
    assert not [n for n in names if "testing" in n or n.startswith("tests/") or "harness" in n], names
    assert "oppie_pulumi/agents/service.py" in names and "oppie_pulumi/phone_agent.py" in names
