# Sourced by tools/*/install.sh: the one way this project finds a Pulumi binary or builds its pinned version.
#
#   find_or_build BINARY BIN_DIR LABEL HINT BUILD_FUNCTION [--build]
#
# Without --build, a BINARY on PATH (other than ours) is used as is. Otherwise BIN_DIR holds the pinned build;
# its `.complete` stamp is written only after BUILD_FUNCTION (called with BIN_DIR) succeeded, so a build cut
# short is redone rather than half-used. The stamp holds $FIND_OR_BUILD_STAMP (empty if unset), which a caller
# sets to what its build makes (the binaries, a hash of its own sources): a folder stamped otherwise, e.g. built
# before a binary was added, is rebuilt. Prints the folder to put on PATH as the last line of stdout; progress
# and errors go to stderr. Exits 2 when there is neither a binary on PATH nor Go to build one (HINT says what
# to install).
find_or_build() {
  local binary="$1" bin="$2" label="$3" hint="$4" build="$5" mode="${6:-}" own started
  if [[ "$mode" != "--build" ]] && own="$(command -v "$binary" 2>/dev/null)" && [[ "$own" != "$bin/$binary" ]]; then
    echo "using the $label on PATH: $own" >&2
    dirname "$own"
    return 0
  fi
  if [[ -f "$bin/.complete" ]] && [[ "$(cat "$bin/.complete")" == "${FIND_OR_BUILD_STAMP:-}" ]]; then
    echo "$bin"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "install.sh: no $binary on PATH and no Go toolchain to build one." >&2
    echo "  $hint" >&2
    exit 2
  fi
  echo "building the $label into $bin (first run only: minutes on 2 cores)..." >&2
  started=$SECONDS
  rm -f "$bin/.complete"
  mkdir -p "$bin"
  "$build" "$bin"
  printf '%s\n' "${FIND_OR_BUILD_STAMP:-}" >"$bin/.complete"
  echo "built the $label in $((SECONDS - started)) s" >&2
  echo "$bin"
}
