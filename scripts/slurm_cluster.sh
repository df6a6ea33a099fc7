#!/usr/bin/env bash
# A one-node SLURM cluster with accounting, for the tests marked `slurm` (and for trying
# sweeps/launch.py --executor slurm on a single machine).
#
#   bash scripts/slurm_cluster.sh start    # install if needed, start, wait until usable
#   bash scripts/slurm_cluster.sh stop     # cancel all jobs, wait for the queue, end daemons
#   bash scripts/slurm_cluster.sh status   # daemons, sinfo, squeue
#
# Needs root on Debian 12 (bookworm) or a relative with Slurm 22.05 packages, and no
# systemd: the daemons are started by hand. `start` is idempotent: it installs
# `slurmctld slurmd slurm-client slurmdbd munge mariadb-server` with apt when they are
# missing (about 15 s), starts only the daemons that are not running (munged, mariadbd
# with its own data folder and no networking, slurmdbd, slurmctld, slurmd; about 2 s
# when installed), and returns once `sinfo` shows the node idle and `sacct` answers.
#
# The config goes where Slurm's clients look by default, /etc/slurm/slurm.conf (and
# slurmdbd.conf beside it, mode 0600), so no SLURM_CONF is needed; the script exports
# nothing. It refuses to overwrite a slurm.conf it did not write. State, database and
# logs live under $VMPO_SLURM_DIR (default /var/lib/vmpo-bench-slurm); job ids carry on
# across restarts (the controller's state is kept), so sacct never sees an id twice.
#
# Settings that matter on one node (measured; see the project README):
#   accounting through slurmdbd: without it sacct fails and Submitit cannot see a job end;
#   AuthInfo=cred_expire=10 and SchedulerParameters=sched_interval=5: a requeued job
#   starts again in ~15 s instead of ~2 min; KillWait=5 keeps cancels short;
#   proctrack/linuxproc, task/none, jobacct_gather/none: no cgroups needed;
#   select/cons_tres with CR_CPU: one job per requested CPU.
set -euo pipefail

ACTION="${1:-}"
DIR="${VMPO_SLURM_DIR:-/var/lib/vmpo-bench-slurm}"
ETC=/etc/slurm
CONF="$ETC/slurm.conf"
DBDCONF="$ETC/slurmdbd.conf"
MARKER="# written by vmpo-bench scripts/slurm_cluster.sh"
CLUSTER=vmpobench
NODE="$(hostname -s)"
MYSQL_SOCK=/run/mysqld/mysqld.sock   # the client library's default: slurmdbd finds it
PKGS=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)

log() { echo "slurm_cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_of() {  # pid_of NAME -> the live pid recorded in $DIR/run/NAME.pid, or nothing
  local f="$DIR/run/$1.pid" pid
  [ -s "$f" ] || return 0
  pid="$(tr -dc 0-9 <"$f")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.2 s
  local limit="$1" what="$2"; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "gave up after ${limit}s waiting for $what; logs in $DIR/log"
      return 1
    fi
    sleep 0.2
  done
}

install_packages() {
  local missing=()
  for bin in slurmctld slurmd sinfo slurmdbd munged mariadbd mariadb-install-db; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root to install ${PKGS[*]}"
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  log "installing ${PKGS[*]} (missing: ${missing[*]})"
  # No daemon may start from a package's postinst: we start them ourselves.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; own_policy=1
  fi
  if ! apt-cache policy slurmctld 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null \
    || { [ "$own_policy" = 1 ] && rm -f "$policy"; die "apt-get install failed"; }
  [ "$own_policy" = 1 ] && rm -f "$policy"
  return 0
}

write_configs() {
  mkdir -p "$ETC" "$DIR"/{run,log,state,spool}
  if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching a real cluster's config"
  fi
  local cpus mem
  cpus="$(nproc)"
  mem="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)"
  local tmp
  tmp="$(mktemp "$ETC/.slurm.conf.XXXXXX")"
  cat >"$tmp" <<EOF
$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5
SlurmctldParameters=preempt_send_user_signal
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  chmod 644 "$tmp"; mv "$tmp" "$CONF"
  tmp="$(mktemp "$ETC/.slurmdbd.conf.XXXXXX")"
  cat >"$tmp" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
EOF
  chmod 600 "$tmp"; mv "$tmp" "$DBDCONF"
}

start_munge() {
  [ -n "$(pid_of munged)" ] && return 0
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key; chmod 755 /run/munge
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  wait_for 10 munged test -s /run/munge/munged.pid
  cp /run/munge/munged.pid "$DIR/run/munged.pid"
  wait_for 10 "munge to answer" sh -c 'munge -n | unmunge'
}

start_mariadb() {
  [ -n "$(pid_of mariadbd)" ] && return 0
  local data="$DIR/mysql"
  mkdir -p /run/mysqld
  if [ ! -d "$data/mysql" ]; then
    mariadb-install-db --no-defaults --user=root --datadir="$data" \
      --auth-root-authentication-method=socket --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
  fi
  rm -f "$MYSQL_SOCK"
  setsid mariadbd --no-defaults --user=root --datadir="$data" --socket="$MYSQL_SOCK" \
    --skip-networking --pid-file="$DIR/run/mariadbd.pid" --log-error="$DIR/log/mariadb.log" \
    </dev/null >/dev/null 2>&1 &
  wait_for 30 mariadb mariadb-admin --no-defaults --socket="$MYSQL_SOCK" ping
}

start_slurmdbd() {
  [ -n "$(pid_of slurmdbd)" ] && return 0
  slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
  if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
}

start_slurmctld() {
  [ -n "$(pid_of slurmctld)" ] && return 0
  slurmctld
  wait_for 30 slurmctld scontrol ping
}

start_slurmd() {
  [ -n "$(pid_of slurmd)" ] && return 0
  slurmd
}

node_state() { sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -1; }
node_idle() { case "$(node_state)" in idle|mix|alloc) return 0;; *) return 1;; esac; }

start() {
  local t0=$SECONDS
  [ "$(uname -s)" = Linux ] || die "Linux only"
  install_packages
  write_configs
  start_munge
  start_mariadb
  start_slurmdbd
  start_slurmctld
  start_slurmd
  if ! wait_for 20 "node $NODE to come up" node_idle; then
    # a node left down or drained by an earlier run is brought back
    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    wait_for 20 "node $NODE to become idle" node_idle || { status; exit 1; }
  fi
  wait_for 30 sacct sacct -n -X
  log "cluster $CLUSTER up (node $NODE: $(node_state), $(nproc) CPUs) in $((SECONDS - t0))s"
}

stop_daemon() {  # stop_daemon NAME: TERM, wait up to 15 s, then KILL
  local pid
  pid="$(pid_of "$1")"
  [ -z "$pid" ] && return 0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$1 ($pid) ignored SIGTERM for 15s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.2
  done
  rm -f "$DIR/run/$1.pid"
}

stop() {
  local t0=$SECONDS
  if [ -n "$(pid_of slurmctld)" ]; then
    local jobs
    jobs="$(squeue -h -o %i 2>/dev/null || true)"
    if [ -n "$jobs" ]; then
      log "cancelling $(echo "$jobs" | wc -l) job(s)"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      # the queue drains when every job has left COMPLETING (KillWait=5)
      wait_for 60 "the queue to drain" sh -c '[ -z "$(squeue -h -o %i)" ]' || true
    fi
  fi
  stop_daemon slurmd
  stop_daemon slurmctld
  stop_daemon slurmdbd
  stop_daemon mariadbd
  stop_daemon munged
  log "stopped in $((SECONDS - t0))s"
}

status() {
  local name pid rc=0
  for name in munged mariadbd slurmdbd slurmctld slurmd; do
    pid="$(pid_of "$name")"
    if [ -n "$pid" ]; then echo "$name: running (pid $pid)"; else echo "$name: stopped"; rc=3; fi
  done
  if [ -n "$(pid_of slurmctld)" ]; then
    sinfo || true
    squeue || true
  fi
  return $rc
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
