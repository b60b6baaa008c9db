#!/usr/bin/env bash
# Find or build the YAML language host; print the folder that holds it (for PATH) on the last line of stdout.
#
#   tools/pulumi-yaml/install.sh            a `pulumi-language-yaml` on PATH is used as is; otherwise the pinned build
#   tools/pulumi-yaml/install.sh --build    always the pinned build (what the tests use)
#
# The Pulumi CLI runs a YAML program through the language host `pulumi-language-yaml`, which Pulumi ships in its
# release tarballs (get.pulumi.com, not reachable here). Its source is the Go module github.com/pulumi/pulumi-yaml,
# which the Go module proxy serves: this module pins it (go.mod) and builds its cmd/pulumi-language-yaml. A module of
# its own, because v1.25.0 does not compile against the CLI's pkg v3.274.1: it builds with the Pulumi modules it
# asks for (v3.206.0) and speaks the same gRPC protocol to the v3.274.1 CLI. The binary lands in
# .tools/pulumi-yaml-<version>/bin (ignored by git), so only the first run compiles (about a minute with the
# modules cached); later runs return at once.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(awk '$1 == "require" && $2 == "github.com/pulumi/pulumi-yaml" { print $3 }' "$here/go.mod")"
if [[ -z "$version" ]]; then
  echo "install.sh: tools/pulumi-yaml/go.mod pins no github.com/pulumi/pulumi-yaml" >&2
  exit 2
fi

build() {
  cd "$here"
  go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi-yaml/pkg/version.Version=$version" \
    -o "$1/pulumi-language-yaml" github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml
}

# shellcheck source=../find-or-build.sh
source "$here/../find-or-build.sh"
folder="$(find_or_build pulumi-language-yaml "$root/.tools/pulumi-yaml-$version/bin" "YAML language host $version" \
  "Install the Pulumi CLI (its release ships the YAML host) or Go 1.26+, then run this again." build "${1:-}")"

# Beside the pinned CLI too (linked), where Pulumi's releases put their language hosts: the CLI looks there first, and
# warns "using pulumi-language-yaml from $PATH" (two to four times a command) when it finds the host on PATH
# only. A CLI of the user's own is left alone (its release ships the host).
cli_version="$(awk '$1 == "github.com/pulumi/pulumi/pkg/v3" { print $2 }' "$root/tools/pulumi/go.mod")"
cli="$root/.tools/pulumi-$cli_version/bin"
if [[ -d "$cli" && "$folder" == "$root/.tools/pulumi-yaml-$version/bin" ]]; then
  # A hard link (a copy across filesystems), not a symlink: the CLI resolves symlinks on the PATH it searched
  # but not beside itself, so through a symlinked folder a symlink would still look "from $PATH".
  if ! cmp -s "$folder/pulumi-language-yaml" "$cli/pulumi-language-yaml"; then
    rm -f "$cli/pulumi-language-yaml"
    ln "$folder/pulumi-language-yaml" "$cli/pulumi-language-yaml" 2>/dev/null ||
      cp "$folder/pulumi-language-yaml" "$cli/pulumi-language-yaml"
  fi
fi
echo "$folder"
