#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests and for trying the sweep script:
#   scripts/slurm/local-cluster.sh start DIR   # prints: export SLURM_CONF=DIR/slurm.conf
#   scripts/slurm/local-cluster.sh stop DIR
# Needs Debian's slurmctld, slurmd, slurm-client and munge (apt-get install them) and
# root (slurmd runs jobs as their submitting user). Everything it writes is under DIR:
# the config, a fresh munge key and socket, state, spool and logs. The ports are
# $SLURMCTLD_PORT and $SLURMD_PORT if set, else the first free ones from 6817 on; a
# start that fails stops whatever it had started.
set -euo pipefail
# The daemons live in /usr/sbin, which not every PATH has.
export PATH="$PATH:/usr/sbin:/sbin"
cmd="${1:-}"; dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop DIR" >&2; exit 2
fi
mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
conf="$dir/slurm.conf"; sock="$dir/munge/munge.socket"

# Kill the daemon whose pid file DIR/NAME.pid names, if that process is still NAME
# (a stale pid file never kills an unrelated process that got the same pid).
kill_daemon() {
  local name="$1" sig="$2" pid
  [ -f "$dir/$name.pid" ] || return 0
  pid="$(cat "$dir/$name.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$name" ] || return 0
  kill "$sig" "$pid" 2>/dev/null || true
}

stop() {
  for p in slurmd slurmctld munged; do kill_daemon "$p" -TERM; done
  for _ in $(seq 1 20); do
    alive=0
    for p in slurmd slurmctld munged; do
      pid="$(cat "$dir/$p.pid" 2>/dev/null || true)"
      [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$p" ] && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.25
  done
  for p in slurmd slurmctld munged; do
    kill_daemon "$p" -KILL
    rm -f "$dir/$p.pid"
  done
}

# Whether TCP port $1 is free: no socket listens on it (IPv4 or IPv6).
port_free() {
  local hex
  hex="$(printf ':%04X' "$1")"
  ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '{print $2}' | grep -q "$hex\$"
}

# The first free port from $1 on, skipping $2 (so two picks differ).
free_port() {
  local p="$1"
  while [ "$p" -lt 65000 ]; do
    if [ "$p" != "${2:-}" ] && port_free "$p"; then echo "$p"; return 0; fi
    p=$((p + 1))
  done
  echo "no free TCP port from $1 on" >&2; return 1
}

start() {
  stop
  local host cpus ctld_port slurmd_port
  host="$(hostname -s)"; cpus="$(nproc)"
  # Slurm's usual ports (6817, 6818) may belong to a Slurm already running here:
  # take the given ones, else the first free ones from there on.
  ctld_port="${SLURMCTLD_PORT:-$(free_port 6817)}"
  slurmd_port="${SLURMD_PORT:-$(free_port $((ctld_port + 1)) "$ctld_port")}"
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
  chmod 700 "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$sock" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
  cat > "$conf" <<CONF
ClusterName=actlab
SlurmctldHost=$host
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
KillWait=30
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$conf"
  slurmctld -f "$conf"
  slurmd -f "$conf"
  for _ in $(seq 1 60); do
    if sinfo -h -o %T 2>/dev/null | grep -q idle; then
      echo "export SLURM_CONF=$conf"
      return 0
    fi
    sleep 0.5
  done
  echo "the one-node cluster did not come up; see $dir/log/" >&2
  tail -n 20 "$dir/log/"*.log >&2 || true
  return 1
}

# A start that fails anywhere (set -e included) stops the daemons it had started.
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ "$cmd" = start ]; then stop; fi
  exit "$rc"
}
trap on_exit EXIT

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
