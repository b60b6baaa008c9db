#!/usr/bin/env bash
# Find or build the Pulumi CLI; print the folder that holds it (for PATH) on the last line of stdout.
#
#   tools/pulumi/install.sh            a `pulumi` on PATH is used as is; otherwise the pinned build (below)
#   tools/pulumi/install.sh --build    always the pinned build (what the tests and CI use)
#
# The pinned build: get.pulumi.com cannot be reached here, but the Go module proxy can, so the CLI is built from
# Pulumi's own Go module (github.com/pulumi/pulumi/pkg/v3, version pinned in tools/pulumi/go.mod), as Pulumi's
# provider repositories do. Beside it go the Python language host (ours, see cmd/pulumi-language-python/main.go
# for why) and two scripts Pulumi ships in its SDK module: the program executor and the dynamic-provider plugin
# `pulumi-resource-pulumi-python`. Everything lands in .tools/pulumi-<version>/bin (ignored by git), so only the
# first run compiles (minutes on 2 cores); later runs return at once.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(awk '$1 == "github.com/pulumi/pulumi/pkg/v3" { print $2 }' "$here/go.mod")"
bin="$root/.tools/pulumi-$version/bin"

if [[ "${1:-}" != "--build" ]] && own="$(command -v pulumi 2>/dev/null)" && [[ "$own" != "$bin/pulumi" ]]; then
  echo "using the Pulumi CLI on PATH: $own ($("$own" version 2>/dev/null || echo 'version unknown'))" >&2
  dirname "$own"
  exit 0
fi

if [[ -f "$bin/.complete" ]]; then
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install.sh: no Pulumi CLI on PATH and no Go toolchain to build one." >&2
  echo "  Install the Pulumi CLI (https://www.pulumi.com/docs/install/) or Go 1.26+, then run this again." >&2
  exit 2
fi

echo "building the Pulumi CLI $version into $bin (first run only: several minutes on 2 cores)..." >&2
started=$SECONDS
mkdir -p "$bin"
cd "$here"
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version"
go build -trimpath -ldflags "$ldflags" -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
go build -trimpath -ldflags "$ldflags" -o "$bin/pulumi-language-python" ./cmd/pulumi-language-python
sdk="$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$bin/pulumi-resource-pulumi-python"
"$bin/pulumi" version >/dev/null
touch "$bin/.complete"
echo "built the Pulumi CLI $version in $((SECONDS - started)) s" >&2
echo "$bin"
