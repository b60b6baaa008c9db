"""A stack on a file backend that a killed command left unreadable: the torn attribute file, and its mending.

Pulumi's file backend (``file://``, gocloud's ``fileblob``) writes each checkpoint in two parts: the state itself
into a temporary file renamed into place (atomic), and beside it ``<stack>.json.attrs``, a small JSON of blob
attributes, written *in place* (``os.Create``, then the JSON). A SIGKILL between the two steps of the second
leaves that file empty, and from then on every command on the stack (``cancel``, ``stack export``, ``up``)
fails with ``error: failed to load checkpoint: EOF``. The state beside it is whole: the previous checkpoint,
whose pending creates ``recover`` settles as after any kill. Seen in CI's chaos trial (tests/test_chaos.py).

``fileblob`` reads a missing attribute file as the defaults (a content type, no checksum), so removing a torn
one is all the mending needs. Only a file that is not JSON is removed; nothing else in the backend is touched.
Other backends (Pulumi Cloud, S3, Azure, GCS) write each object whole and never leave this.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

from .stacks import Run, StackRef

__all__ = ["mend"]

# Where the file backend keeps a stack's checkpoint: per project (.pulumi/stacks/<project>/<stack>.json) or, for
# backends made before projects were scoped, .pulumi/stacks/<stack>.json; compressed when the backend is told to
# (PULUMI_DIY_BACKEND_GZIP, PULUMI_DIY_BACKEND_ZSTD). A torn lock file needs nothing: `pulumi cancel` deletes it.
_CHECKPOINTS = ("{stack}.json", "{stack}.json.gz", "{stack}.json.zst")
_PROJECT_NAME = re.compile(r"^name:\s*['\"]?([^'\"\s#]+)", re.MULTILINE)


def mend(ref: StackRef, run: Run) -> list[Path]:
    """Remove the torn attribute files of ``ref``'s checkpoint on a file backend; the files removed."""
    root = _file_backend(ref, run)
    if root is None:
        return []
    *scope, stack = ref.name.split("/")
    project = scope[-1] if len(scope) == 2 else _project_name(ref.dir)
    stacks = root / ".pulumi" / "stacks"
    folders = [stacks / project] if project else sorted(p for p in stacks.glob("*") if p.is_dir())
    mended = []
    for folder in [*folders, stacks]:
        for pattern in _CHECKPOINTS:
            attrs = folder / (pattern.format(stack=stack) + ".attrs")
            if attrs.is_file() and _torn(attrs):
                attrs.unlink()
                mended.append(attrs)
    return mended


def _file_backend(ref: StackRef, run: Run) -> Path | None:
    """The folder of the stack's backend if it is a ``file://`` one (``pulumi whoami`` reads no state)."""
    try:
        result = run(["whoami", "--json"], ref.dir)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    try:
        url = urlparse(str(json.loads(result.stdout).get("url", "")))
    except (ValueError, AttributeError):
        return None
    if url.scheme != "file":
        return None
    path = unquote(url.path)
    if url.netloc == "~":  # file://~/state: a folder under the home directory, as Pulumi reads it
        return Path(f"~{path}").expanduser()
    return Path(path) if url.netloc in ("", "localhost") else None


def _project_name(folder: Path) -> str | None:
    for name in ("Pulumi.yaml", "Pulumi.yml"):
        try:
            found = _PROJECT_NAME.search((folder / name).read_text(encoding="utf-8"))
        except OSError:
            continue
        return found.group(1) if found else None
    return None


def _torn(attrs: Path) -> bool:
    try:
        json.loads(attrs.read_bytes() or b"!")
    except ValueError:
        return True
    return False
