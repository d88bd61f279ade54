#!/usr/bin/env bash
# Installs and starts a one-node Slurm cluster on this machine for the `slurm` tests.
#
# Debian's slurm-wlm 22.05 with munge, plus slurmdbd on MariaDB: accounting is what makes Slurm
# reject an unknown account (AccountingStorageEnforce=associations) and what `sacct` (nemo-run's
# job status) reads. Idempotent: a cluster that already answers is left as it is.
#
# Usage: bash .ci/install_slurm.sh        (as root; prints "slurm: ready" when sinfo shows the node idle)
#        bash .ci/install_slurm.sh stop   stops the daemons this script started (and only those), as
#                                          .ci/run does when it ends, so the machine is left as it was
# Env:   NEMOLITE_SLURM_ACCOUNT  account the submitting user gets (default: nemolite)
#        NEMOLITE_SLURM_PARTITION  partition name (default: debug)
set -euo pipefail

ACCOUNT="${NEMOLITE_SLURM_ACCOUNT:-nemolite}"
PARTITION="${NEMOLITE_SLURM_PARTITION:-debug}"
CLUSTER=nemolite
NODE="$(hostname -s)"
CONF=/etc/slurm
LOG=/var/log/slurm
SUBMIT_USER="$(id -un)"

log() { echo "slurm: $*"; }

# Daemons this script started, "name pid" a line: `stop` ends exactly these processes (a daemon
# that was already running when the script came is not ours to stop).
STARTED=/run/nemolite-slurm.started

started() {  # started NAME: records the newest process of that name (the daemon just forked)
    local pid=""
    for _ in $(seq 20); do pid="$(pgrep -xn "$1" || true)"; [ -n "$pid" ] && break; sleep 0.5; done
    [ -n "$pid" ] && mkdir -p "$(dirname "$STARTED")" && echo "$1 $pid" >>"$STARTED"
}

stop_started() {
    [ -f "$STARTED" ] || { log "nothing to stop (no daemon was started by this script)"; return 0; }
    local name pid
    # Reverse order of start: slurmd before slurmctld before slurmdbd before its database and munge.
    tac "$STARTED" | while read -r name pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" || true
            for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
            log "stopped $name ($pid)"
        fi
    done
    rm -f "$STARTED"
}

if [ "${1:-}" = stop ]; then
    stop_started
    exit 0
fi

cluster_idle() {  # the node answers AND accounting works (slurmdbd reaches its database)
    command -v sinfo >/dev/null 2>&1 \
        && timeout 10 sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)' \
        && timeout 10 sacctmgr -n show cluster >/dev/null 2>&1
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local secs="$1" what="$2"
    shift 2
    for _ in $(seq "$secs"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    log "timed out waiting for $what"
    return 1
}

if cluster_idle; then
    log "ready (already running)"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "slurm: must run as root to install and start the daemons" >&2
    exit 3
fi

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null \
        && command -v munged >/dev/null && command -v mariadbd >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || { echo "slurm: apt-get not found" >&2; exit 3; }
    log "installing slurm-wlm, slurmdbd, munge, mariadb-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm slurmdbd munge mariadb-server >/dev/null
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --force
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    if ! pgrep -x munged >/dev/null; then
        runuser -u munge -- /usr/sbin/munged --force
        started munged
    fi
    wait_for 20 munged sh -c 'munge -n | unmunge'
}

start_mariadb() {
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld
    if ! pgrep -x mariadbd >/dev/null; then
        if [ ! -d /var/lib/mysql/mysql ]; then
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
        fi
        # setsid: its own session, so the end of the shell job that started it does not end it.
        (setsid mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
            --bind-address=127.0.0.1 >/var/log/mariadbd.log 2>&1 &)
        started mariadbd
    fi
    wait_for 60 mariadb mariadb -u root -e 'select 1'
    mariadb -u root <<'SQL'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
}

write_configs() {
    local mem_mb
    # 90% of the machine's memory, so that a job asking for nothing specific always fits.
    mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p "$CONF" "$LOG" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /run/slurm
    cat >"$CONF/slurm.conf" <<EOF
# Written by nemolite .ci/install_slurm.sh: one node on localhost for tests.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120): the tests
# requeue a job and wait for it to resume.
AuthInfo=cred_expire=20
MpiDefault=none
# gVisor/containers: no cgroups, so track processes by parent id and bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
WaitTime=0
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageEnforce=associations
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$CONF/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=/run/slurm/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmdbpass
EOF
    chmod 0600 "$CONF/slurmdbd.conf"
}

start_slurmdbd() {
    pgrep -x slurmdbd >/dev/null || { slurmdbd && started slurmdbd; }
    wait_for 60 slurmdbd sacctmgr -n show cluster
    sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null || true
    sacctmgr -i -Q add account "$ACCOUNT" Cluster="$CLUSTER" Description=nemolite Organization=nemolite >/dev/null || true
    sacctmgr -i -Q add user "$SUBMIT_USER" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null || true
}

start_slurm() {
    pgrep -x slurmctld >/dev/null || { slurmctld && started slurmctld; }
    wait_for 60 slurmctld scontrol ping
    pgrep -x slurmd >/dev/null || { slurmd -N "$NODE" && started slurmd; }
    # A node left DOWN by an earlier, unclean stop comes back with ReturnToService=2, but resume it
    # anyway so that a rerun of this script always ends with an idle node.
    sleep 1
    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
    wait_for 60 "node $NODE idle" cluster_idle
}

install_packages
start_munge
start_mariadb
write_configs
start_slurmdbd
start_slurm
log "ready: partition=$PARTITION account=$ACCOUNT node=$NODE"
