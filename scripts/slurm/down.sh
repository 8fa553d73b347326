#!/usr/bin/env bash
# Stops the cluster up.sh started for STATE_DIR: cancels its jobs, stops slurmd, slurmctld and munged,
# then ends any job process still left (found by the SLURM_CONF in its environment). Leaves the files.
# usage: down.sh STATE_DIR
set -uo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 STATE_DIR" >&2
    exit 2
fi
state=$(cd -- "$1" && pwd -P) || exit 1
export SLURM_CONF="$state/slurm.conf"

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

# Jobs first, while slurmd can still end their steps in order.
jobs=$(squeue --noheader --format=%i 2>/dev/null)
if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086  # one job id per word
    scancel $jobs 2>/dev/null
    for _ in $(seq 1 30); do
        [ -z "$(squeue --noheader --format=%i 2>/dev/null)" ] && break
        sleep 1
    done
fi

stop "$state/slurmd.pid"
stop "$state/slurmctld.pid"
stop "$state/munge/munged.pid"

# What a job left behind: slurmstepd and the job's own processes (SLURM_JOB_ID set), with this cluster's
# SLURM_CONF in their environment. A shell that merely exported SLURM_CONF is neither.
for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}
    pid=${pid%/environ}
    variables=$({ tr '\0' '\n' < "$environ"; } 2>/dev/null) || continue
    grep -qxF "SLURM_CONF=$SLURM_CONF" <<< "$variables" || continue
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmstepd ] || grep -q '^SLURM_JOB_ID=' <<< "$variables"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
done
exit 0
