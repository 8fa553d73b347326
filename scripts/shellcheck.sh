#!/usr/bin/env bash
# Runs shellcheck for the test suite, which lints every script a target renders: installs Debian's
# package first where the command is missing (as root; apt-ensure.sh says why not otherwise).
# usage: shellcheck.sh ARGS...    (shellcheck's own arguments)
set -euo pipefail

"$(dirname -- "$0")/apt-ensure.sh" shellcheck=shellcheck
exec shellcheck "$@"
