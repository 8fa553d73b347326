#!/usr/bin/env bash
# A one-node Slurm cluster on loopback, for tests: installs Debian's slurm-wlm and munge where missing,
# writes every config, key, socket, log and state file under STATE_DIR, starts munged, slurmctld and
# slurmd as root, and waits until the node is idle. Each cluster has its own munged socket and ports,
# so two can run side by side. Stop it with down.sh STATE_DIR.
#
# usage: up.sh STATE_DIR    (then: export SLURM_CONF=STATE_DIR/slurm.conf)
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 STATE_DIR" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "up.sh: starting slurmctld and slurmd needs root" >&2
    exit 1
fi
mkdir -p -- "$1"
state=$(cd -- "$1" && pwd -P)
chmod 700 -- "$state"

"$(dirname -- "$0")/../apt-ensure.sh" slurmctld=slurm-wlm slurmd=slurm-wlm munged=munge

# munge: a fresh key and a daemon of our own on a socket in STATE_DIR.
mkdir -p -- "$state/munge"
chmod 700 -- "$state/munge"
head -c 1024 /dev/urandom > "$state/munge/munge.key"
chmod 400 -- "$state/munge/munge.key"
munged --force --socket="$state/munge/munge.socket" --key-file="$state/munge/munge.key" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
node=$(hostname -s)
cpus=$(nproc)
memory_mb=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
mkdir -p -- "$state/ctld" "$state/spool"

cat > "$state/slurm.conf" <<CONF
# Written by up.sh: a one-node test cluster on loopback, without accounting or cgroups.
ClusterName=ftc-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=2
MinJobAge=600
KillWait=30
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

export SLURM_CONF="$state/slurm.conf"
slurmctld
slurmd

for _ in $(seq 1 60); do
    if [ "$(sinfo --noheader --format=%t 2>/dev/null)" = "idle" ]; then
        echo "up.sh: node $node idle; export SLURM_CONF=$SLURM_CONF" >&2
        exit 0
    fi
    sleep 1
done
echo "up.sh: the node did not become idle within 60 s; logs in $state" >&2
tail -n 20 -- "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
exit 1
