#!/usr/bin/env bash
# Find or build the Pulumi CLI; print the folder that holds it (for PATH) on the last line of stdout.
#
#   tools/pulumi/install.sh            a `pulumi` on PATH is used as is; otherwise the pinned build (below)
#   tools/pulumi/install.sh --build    always the pinned build (what the tests and CI use)
#
# The pinned build: get.pulumi.com cannot be reached here, but the Go module proxy can, so the CLI is built from
# Pulumi's own Go module (github.com/pulumi/pulumi/pkg/v3, version pinned in tools/pulumi/go.mod), as Pulumi's
# provider repositories do. Beside it go the Python and Node.js language hosts (ours, see
# cmd/pulumi-language-python/main.go and cmd/pulumi-language-nodejs/main.go for why) and two scripts Pulumi ships in
# its SDK module: the Python program executor and the dynamic-provider plugin `pulumi-resource-pulumi-python`.
# Everything lands in .tools/pulumi-<version>/bin (ignored by git), so only the first run compiles (minutes on 2
# cores); later runs return at once, unless the folder was stamped by a build that made other binaries or used
# other sources of ours (then it is rebuilt: seconds, with Go's build cache).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(awk '$1 == "github.com/pulumi/pulumi/pkg/v3" { print $2 }' "$here/go.mod")"

build() {
  local bin="$1" ldflags sdk
  cd "$here"
  ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version"
  go build -trimpath -ldflags "$ldflags" -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  go build -trimpath -ldflags "$ldflags" -o "$bin/pulumi-language-python" ./cmd/pulumi-language-python
  go build -trimpath -ldflags "$ldflags" -o "$bin/pulumi-language-nodejs" ./cmd/pulumi-language-nodejs
  sdk="$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$bin/pulumi-resource-pulumi-python"
  "$bin/pulumi" version >/dev/null
}

# What a finished build holds, and from which of our sources: a folder stamped otherwise is rebuilt.
binaries="pulumi pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python pulumi-language-nodejs"
FIND_OR_BUILD_STAMP="$binaries $(cat "$here"/go.mod "$here"/go.sum "$here"/cmd/*/main.go "$here"/internal/*/*.go | cksum)"

# shellcheck source=../find-or-build.sh
source "$here/../find-or-build.sh"
find_or_build pulumi "$root/.tools/pulumi-$version/bin" "Pulumi CLI $version" \
  "Install the Pulumi CLI (https://www.pulumi.com/docs/install/) or Go 1.26+, then run this again." build "${1:-}"
