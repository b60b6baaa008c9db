#!/usr/bin/env bash
# The release artefacts (`make dist`): everything a team installs, built from this checkout into OUT_DIR.
#
#   tools/release/dist.sh OUT_DIR PLUGIN_DOWNLOAD_URL      (the pulumi CLI on PATH: `make dist` sees to it)
#
#   oppie_pulumi-<v>-py3-none-any.whl, oppie_pulumi-<v>.tar.gz   the package: the dynamic PhoneAgent, the sandbox, the
#                                                                oppie-pulumi CLI (pip install)
#   pulumi-resource-oppie-v<v>-<os>-<arch>.tar.gz                the provider plugin (plugin/package.sh), named as the
#                                                                engine asks for it at PLUGIN_DOWNLOAD_URL
#   pulumi_oppie-<v>-py3-none-any.whl                            the Python SDK (import pulumi_oppie)
#   oppie-pulumi-oppie-<v>.tgz                                   the Node.js SDK (@oppie/pulumi-oppie), compiled
#   oppie-<v>.yaml                                               the YAML package declaration (a YAML program's SDK)
#   pulumi-oppie-schema-v<v>.json                                the schema, for SDKs in other languages (gen-sdk)
#
# One version, oppie_pulumi/_version.py: pyproject.toml reads it, the plugin reports it and names its tarball with it,
# and the schema carries it into every SDK. The SDKs are generated from a schema that also carries
# PLUGIN_DOWNLOAD_URL (`pluginDownloadURL`): each SDK registers its resources with it, so the engine downloads the
# plugin from `<PLUGIN_DOWNLOAD_URL>/pulumi-resource-oppie-v<v>-<os>-<arch>.tar.gz` the first time a program uses it.
#
# PYTHON is the interpreter to build with and for (default: the checkout's .venv; `make setup`). Intermediate files go
# to build/release/; the TypeScript compiler and @pulumi/pulumi for the Node.js SDK are installed there once, from
# tools/release/nodejs/package-lock.json. Needs PyPI and the npm registry (or their caches), Node.js and npm.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ $# -ne 2 ] || [ -z "$2" ]; then
  echo "usage: tools/release/dist.sh OUT_DIR PLUGIN_DOWNLOAD_URL" >&2
  exit 2
fi
out="$(mkdir -p "$1" && cd "$1" && pwd)"
url="$2"
python="${PYTHON:-$root/.venv/bin/python}"
version="$("$python" -c 'import runpy, sys; print(runpy.run_path(sys.argv[1])["__version__"])' "$root/oppie_pulumi/_version.py")"
work="$root/build/release"
say() { echo "dist: $*" >&2; }

# Artefacts of an earlier build (of any version) would be published with this one: remove them, and only them.
rm -f "$out"/oppie_pulumi-*.whl "$out"/oppie_pulumi-*.tar.gz "$out"/pulumi-resource-oppie-v*.tar.gz \
  "$out"/pulumi_oppie-*.whl "$out"/oppie-pulumi-oppie-*.tgz "$out"/oppie-*.yaml "$out"/pulumi-oppie-schema-v*.json
rm -rf "$work/src" "$work/sdk"
mkdir -p "$work/src"

say "oppie-pulumi $version: sdist and wheel"
# From a copy of the package's sources, as plugin/package.sh does: a build in place would leave build/ and
# *.egg-info in the checkout. `build` makes the sdist, then the wheel from the sdist, so a file the sdist forgot fails here.
cp "$root/pyproject.toml" "$root/README.md" "$work/src/"
(cd "$root" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' oppie_pulumi) | tar -xf - -C "$work/src"
"$python" -m build --no-isolation --outdir "$out" "$work/src" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }

say "the plugin tarball"
PYTHON="$python" "$root/plugin/package.sh" "$out" >/dev/null

say "the schema, with pluginDownloadURL $url"
schema="$out/pulumi-oppie-schema-v$version.json"
"$python" -m oppie_pulumi.provider --schema --plugin-download-url "$url" >"$schema"

say "the SDKs: Python, Node.js, YAML"
for language in python nodejs yaml; do
  pulumi package gen-sdk "$schema" --language "$language" --out "$work/sdk" >/dev/null
done
"$python" -m build --no-isolation --wheel --outdir "$out" "$work/sdk/python" >"$work/build.log" 2>&1 || {
  cat "$work/build.log" >&2
  exit 1
}
install -m 0644 "$work/sdk/yaml/oppie-$version.yaml" "$out/" # gen-sdk writes it 0600: it is for everyone

# The Node.js SDK is published compiled, as Pulumi's providers publish theirs: tsc writes bin/, which becomes the
# package's root (with package.json and README.md), so `main` is index.js and no install runs a compiler.
toolchain="$work/nodejs"
mkdir -p "$toolchain"
if ! cmp -s "$here/nodejs/package-lock.json" "$toolchain/package-lock.json" || [ ! -x "$toolchain/node_modules/.bin/tsc" ]; then
  say "installing the TypeScript toolchain (tools/release/nodejs)"
  cp "$here/nodejs/package.json" "$here/nodejs/package-lock.json" "$toolchain/"
  # --ignore-scripts: nothing here needs to run (protobufjs's postinstall is for its runtime, not its types).
  (cd "$toolchain" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
fi
rm -rf "$toolchain/sdk"
mv "$work/sdk/nodejs" "$toolchain/sdk" # beside node_modules, where tsc finds @pulumi/pulumi and @types/node
"$toolchain/node_modules/.bin/tsc" -p "$toolchain/sdk"
cp "$toolchain/sdk/package.json" "$toolchain/sdk/README.md" "$toolchain/sdk/bin/"
(cd "$toolchain/sdk/bin" && npm pack --pack-destination "$out" --loglevel=error >/dev/null)

say "done: $out"
ls -1 "$out" | grep -E "^(oppie_pulumi-|pulumi-resource-oppie-v|pulumi_oppie-|oppie-pulumi-oppie-|oppie-|pulumi-oppie-schema-v)"
