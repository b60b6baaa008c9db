#!/usr/bin/env bash
# Build the plugin tarball that Pulumi users install like any provider:
#
#   plugin/package.sh [OUT_DIR]      (default: dist/); prints the tarball's path on the last line of stdout
#   pulumi plugin install resource oppie <version> --file dist/pulumi-resource-oppie-v<version>-<os>-<arch>.tar.gz
#
# The tarball holds the launcher (pulumi-resource-oppie), oppie-pulumi built from this checkout with its
# dependencies in lib/ (pip install --target: pulumi, httpx, pydantic and theirs, some with compiled parts, hence a
# tarball per OS, architecture and Python version, as Pulumi names provider tarballs), and python-version, the
# Python it was built with, which the launcher runs. Nothing is fetched when the plugin runs.
#
# Everything in lib/ is byte-compiled here, with that Python, as unchecked-hash .pyc files: the engine starts the
# plugin for every command, and without them each start compiles every module again (the tarball's files are
# read-only to many users, and CI images often set PYTHONDONTWRITEBYTECODE, so nothing is cached). Unchecked-hash
# files stay valid whatever mtimes unpacking gives the sources (`pulumi plugin install` does not keep them).
#
# PYTHON picks the interpreter to build for (default: the checkout's .venv); pip needs PyPI or its cache.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"

# The one version (oppie_pulumi/_version.py), read without importing the package.
version="$("$python" -c 'import runpy, sys; print(runpy.run_path(sys.argv[1])["__version__"])' "$root/oppie_pulumi/_version.py")"
pyversion="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "package.sh: unsupported OS $(uname -s)" >&2; exit 2 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "package.sh: unsupported architecture $(uname -m)" >&2; exit 2 ;;
esac

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$here/pulumi-resource-oppie" "$stage/pulumi-resource-oppie"
echo "$pyversion" > "$stage/python-version"
echo "installing oppie-pulumi $version and its dependencies for Python $pyversion..." >&2
# Built from a copy of the package's sources: pip builds a local project in place, which would leave build/ in the
# checkout (and could carry stale files from an earlier build into this one).
mkdir "$stage/src"
cp "$root/pyproject.toml" "$root/README.md" "$stage/src/"
(cd "$root" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' oppie_pulumi) | tar -xf - -C "$stage/src"
"$python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location --no-compile \
  --target "$stage/lib" "$stage/src" >&2
rm -rf "$stage/src"
# Scripts and caches are no use to the plugin and would make the tarball differ from build to build.
rm -rf "$stage/lib/bin"
find "$stage/lib" -name __pycache__ -type d -prune -exec rm -rf {} +
echo "byte-compiling lib/ for Python $pyversion..." >&2
# -s: the paths recorded in the .pyc files are relative to the plugin's folder (Python puts the real path back
# when it loads one), so they do not name this build's temporary folder.
"$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash -s "$stage/" "$stage/lib" >&2

tarball="$out/pulumi-resource-oppie-v$version-$os-$arch.tar.gz"
tar -czf "$tarball" -C "$stage" .
echo "$tarball"
