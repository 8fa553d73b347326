#!/usr/bin/env bash
# Stops the daemons up.sh started for STATE_DIR (slurmd, slurmctld, then munged); leaves the files.
# usage: down.sh STATE_DIR
set -uo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 STATE_DIR" >&2
    exit 2
fi
state=$1

stop() {
    local pid_file=$1
    [ -f "$pid_file" ] || return 0
    local pid
    pid=$(cat -- "$pid_file")
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
}

stop "$state/slurmd.pid"
stop "$state/slurmctld.pid"
stop "$state/munge/munged.pid"
