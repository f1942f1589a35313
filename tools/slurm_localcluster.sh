#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, for tests and as an example of what `EXECUTOR=slurm` needs.
#
#   sudo bash tools/slurm_localcluster.sh start    # write the config, start munged, slurmctld, slurmd
#   bash tools/slurm_localcluster.sh status        # sinfo / squeue
#   sudo bash tools/slurm_localcluster.sh stop     # stop the daemons this script started (munged too)
#
# Needs Debian/Ubuntu's `slurm-wlm` and `munge` (apt-get install -y slurm-wlm munge) and root (the
# daemons run as root here; jobs run as the submitting user). No systemd: the daemons are started
# directly, their state, logs and pid files live in $SLURM_LOCAL_DIR (default /tmp/rnn-mft-slurm).
# The node is this machine under the name `localhost`, with CPUS cores (default 2), one partition
# `debug`; no cgroups (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none). Idempotent:
# `start` on a running cluster only checks it; `stop` on a stopped one does nothing.
#
# On a real cluster none of this is needed: SLURM is there, and `make reproduce EXECUTOR=slurm`
# submits through submitit with the partition, GPUs and time limit of README's "Running on a cluster".
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/rnn-mft-slurm}
CPUS=${CPUS:-2}
CONF_DIR=/etc/slurm                         # where sbatch/squeue/sinfo look for slurm.conf
CONF=$CONF_DIR/slurm.conf
MUNGE_KEY=/etc/munge/munge.key

log() { echo "slurm_localcluster: $*"; }

write_config() {
    mkdir -p "$DIR"/{state,spool,log,run} "$CONF_DIR"
    # real memory in MB as slurmd sees it (a node that claims more than it has is drained)
    local mem
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    cat > "$CONF.tmp" <<EOF
# written by tools/slurm_localcluster.sh: a one-node cluster on localhost
ClusterName=rnnmft
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
MaxArraySize=10001
NodeName=localhost CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    # no cgroup.conf: cgroups are off (proctrack/linuxproc, task/none)
}

alive() { local pid; pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

start_munge() {
    if [ ! -s "$MUNGE_KEY" ]; then
        log "creating the munge key $MUNGE_KEY"
        mkdir -p /etc/munge
        dd if=/dev/urandom bs=1 count=1024 of="$MUNGE_KEY" 2>/dev/null
    fi
    chown munge:munge "$MUNGE_KEY" 2>/dev/null || true
    chmod 400 "$MUNGE_KEY"
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return                                  # a munged is already answering
    fi
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force 2>/dev/null || /usr/sbin/munged --force
    touch "$DIR/run/munged.ours"                # stop ends only a munged this script started
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.5; done
    log "munged does not answer"; exit 1
}

start() {
    command -v slurmctld >/dev/null || { log "slurmctld not found: apt-get install -y slurm-wlm munge"; exit 1; }
    [ "$(id -u)" = 0 ] || { log "start needs root (the daemons and /etc/slurm)"; exit 1; }
    if alive "$DIR/run/slurmctld.pid" && alive "$DIR/run/slurmd.pid"; then
        log "already running"; wait_ready; return
    fi
    write_config
    start_munge
    alive "$DIR/run/slurmctld.pid" || { log "starting slurmctld"; slurmctld -c -f "$CONF"; }
    alive "$DIR/run/slurmd.pid" || { log "starting slurmd"; slurmd -f "$CONF"; }
    wait_ready
}

wait_ready() {
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
        case "$state" in
            idle|mixed|allocated) log "node localhost is $state"; sinfo; return ;;
            drain*|down*) scontrol update NodeName=localhost State=RESUME 2>/dev/null || true ;;
        esac
        sleep 1
    done
    log "the node did not become idle; logs in $DIR/log"
    tail -n 20 "$DIR"/log/*.log || true
    exit 1
}

stop() {
    for d in slurmd slurmctld; do
        if alive "$DIR/run/$d.pid"; then
            log "stopping $d"
            kill "$(cat "$DIR/run/$d.pid")"
            for _ in $(seq 20); do alive "$DIR/run/$d.pid" || break; sleep 0.5; done
        fi
        rm -f "$DIR/run/$d.pid"
    done
    if [ -f "$DIR/run/munged.ours" ] && alive /run/munge/munged.pid; then
        log "stopping munged"
        kill "$(cat /run/munge/munged.pid)"
        for _ in $(seq 20); do alive /run/munge/munged.pid || break; sleep 0.5; done
    fi
    rm -f "$DIR/run/munged.ours"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo; squeue ;;
    *) echo "usage: $0 start|stop|status"; exit 2 ;;
esac
