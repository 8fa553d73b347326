#!/usr/bin/env bash
# Installs Debian packages whose command is missing, for the test suite's tools.
# usage: apt-ensure.sh COMMAND=PACKAGE...   e.g. apt-ensure.sh shellcheck=shellcheck slurmctld=slurm-wlm
set -euo pipefail

missing=()
for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null || missing+=("${pair#*=}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "apt-ensure.sh: ${missing[*]} missing, and installing needs root on Debian" >&2
    exit 1
fi
echo "apt-ensure.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
