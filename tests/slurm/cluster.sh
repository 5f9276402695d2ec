#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1 for kmnist's SLURM tests (tests/test_slurm.py).
#   tests/slurm/cluster.sh start [DIR]   # prints DIR; `. DIR/env` points sbatch/squeue at it
#   tests/slurm/cluster.sh stop DIR      # cancels its jobs, kills exactly the daemons it started
# Everything (slurm.conf, spool, state, logs, munge key and socket, pid files) lives under DIR
# (a new temp folder by default), so it never touches /etc or another cluster on this machine.
# Daemons run as root in the foreground (-D/-F) so $! is each daemon's own pid; their output goes
# to files, never to this script's (a caller reading our output would wait on the daemons). Needs Debian's
# slurm-wlm and munge (`apt-get install slurm-wlm munge`); tested with Slurm 22.05, munge 0.5.15.
set -euo pipefail

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start() {
    local dir="${1:-$(mktemp -d /tmp/kmnist-slurm.XXXXXX)}"
    for cmd in munged slurmctld slurmd sbatch; do
        command -v "$cmd" >/dev/null || { echo "cluster.sh: $cmd not found (apt-get install slurm-wlm munge)" >&2; exit 2; }
    done
    mkdir -p "$dir"/{state,spool,munge}
    dir="$(cd "$dir" && pwd)"
    chmod 700 "$dir" "$dir/munge"  # munged refuses a key or socket in a folder others may write
    head -c 1024 /dev/urandom > "$dir/munge/munge.key"
    chmod 400 "$dir/munge/munge.key"

    local host cpus mem_mb
    host="$(hostname -s)"
    # The machine's CPUs, not a test worker's share: nproc honours OMP_NUM_THREADS (tests/conftest.py sets it).
    cpus="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"
    # What slurmd may hand out: the machine's memory less a margin for the OS and the daemons.
    mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
    cat > "$dir/slurm.conf" <<CONF
ClusterName=kmnist
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
# No cgroups (none in this container): track processes by parent, bind no CPUs.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
ReturnToService=2
# Jobs end quickly after scancel; a SIGTERM gets 30 s to save a checkpoint before SIGKILL.
KillWait=30
MinJobAge=300
DefMemPerCPU=1024
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    echo "export SLURM_CONF=$dir/slurm.conf" > "$dir/env"
    export SLURM_CONF="$dir/slurm.conf"

    munged -F --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
        < /dev/null > "$dir/munge/munged.out" 2>&1 &
    echo $! > "$dir/munged.started"
    for _ in $(seq 50); do [ -S "$dir/munge/munge.socket" ] && break; sleep 0.1; done
    slurmctld -D -i -f "$dir/slurm.conf" < /dev/null > "$dir/slurmctld.out" 2>&1 &
    echo $! > "$dir/slurmctld.started"
    slurmd -D -N "$host" -f "$dir/slurm.conf" < /dev/null > "$dir/slurmd.out" 2>&1 &
    echo $! > "$dir/slurmd.started"

    # Up when the node takes jobs.
    local state=""
    for _ in $(seq 600); do
        state="$(sinfo -h -n "$host" -o %t 2>/dev/null || true)"
        [[ "$state" == idle* ]] && { echo "$dir"; return 0; }
        sleep 0.1
    done
    echo "cluster.sh: node not idle after 60 s (state '${state}'); logs in $dir" >&2
    tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" "$dir/munge/munged.log" >&2 2>/dev/null || true
    stop "$dir"
    exit 1
}

stop() {
    local dir="${1:?usage: cluster.sh stop DIR}"
    export SLURM_CONF="$dir/slurm.conf"
    # Cancel what is still queued or running, so no slurmstepd outlives its slurmd.
    if [ -f "$dir/slurmctld.started" ] && kill -0 "$(cat "$dir/slurmctld.started")" 2>/dev/null; then
        scancel --full -u root 2>/dev/null || true
        for _ in $(seq 100); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
    fi
    local name pid
    for name in slurmd slurmctld munged; do
        [ -f "$dir/$name.started" ] || continue
        pid="$(cat "$dir/$name.started")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/$name.started"
    done
}

case "${1:-}" in
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    *) echo "usage: $0 start [DIR] | stop DIR" >&2; exit 2 ;;
esac
