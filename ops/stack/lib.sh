# Shared helpers for ops/stack.sh: paths, logging, pid files, port checks and waiting.
# Sourced, never executed. Every long-running process we start is tracked by a pid file
# under $STACK/pids so that up/down/status never touch processes that are not ours.

ROOT=${ROOT:?}
STACK=$ROOT/.stack
PIDS=$STACK/pids
LOGS=$STACK/logs
SETUP_LOG=$LOGS/setup.log
TEMPLATES=$ROOT/ops/stack
READY_TIMEOUT=${STACK_READY_TIMEOUT:-60}
STOP_TIMEOUT=${STACK_STOP_TIMEOUT:-30}

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Noisy commands go to setup.log; on failure the user sees its tail instead of a wall of text.
quiet() {
  local from
  { printf '\n$'; printf ' %q' "$@"; printf '\n'; } >>"$SETUP_LOG"
  from=$(($(stat -c %s "$SETUP_LOG") + 1))
  if ! "$@" >>"$SETUP_LOG" 2>&1 </dev/null; then
    printf 'error: command failed: %s\n--- its output (from %s) ---\n' "$*" "$SETUP_LOG" >&2
    tail -c "+$from" "$SETUP_LOG" | tail -n 25 >&2
    exit 1
  fi
}

# Templates use @STACK@; pure bash substitution so paths need no escaping.
render() {
  local src=$1 dst=$2 text
  text=$(<"$src")
  text=${text//@STACK@/$STACK}
  printf '%s\n' "$text" >"$dst.tmp" && mv -f "$dst.tmp" "$dst"
}

# A pid file counts only if the process is alive, not a zombie (PID 1 may not reap here),
# and its command line still matches, so a recycled pid is not mistaken for our server.
pid_of() {
  local name=$1 pattern=$2 pid cmdline
  [[ -s $PIDS/$name.pid ]] || return 1
  pid=$(head -n1 "$PIDS/$name.pid")
  proc_alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmdline == *"$pattern"* ]] || return 1
  printf '%s\n' "$pid"
}

# The stages and the stores yield the CPU to the edge (and to Kafka and Redis, which it waits
# on): with everything on two cores the edge's p99 at half load was 4-20 times its 10 ms
# target, its requests queued behind folds and merges (bench/README.md, "The edge before the
# stages").
# spawn() gives each process a session of its own, and under sched_autogroup (on by default)
# a session is a scheduling group weighed against the others by the group's nice, not by its
# threads': so both, the group's and every thread's of every process in the session (a
# server already running has its threads, and Postgres its backends).
BACKGROUND_NICE=10
yield_to_edge() {  # PID
  local stat sid p t
  stat=$(proc_stat "$1") || return 0
  read -r _ _ _ sid _ <<<"$stat"
  for p in $(pgrep -s "$sid"); do
    for t in /proc/"$p"/task/*; do renice -n "$BACKGROUND_NICE" -p "${t##*/}" >/dev/null 2>&1 || true; done
  done
  if [[ -w /proc/$1/autogroup ]]; then echo "$BACKGROUND_NICE" 2>/dev/null >"/proc/$1/autogroup" || true; fi
}

# proc_stat PID: "state ppid ..." from /proc/PID/stat (the comm field may contain spaces).
proc_stat() {
  local line
  [[ $1 =~ ^[0-9]+$ ]] && read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  printf '%s\n' "${line##*) }"
}

proc_alive() {
  local stat
  stat=$(proc_stat "$1") && [[ ${stat%% *} != Z ]]
}

# Whether a live process still works in DIR (its cwd), e.g. a server's orphaned children.
dir_in_use() {
  local cwd pid
  for cwd in /proc/[0-9]*/cwd; do
    [[ $(readlink "$cwd" 2>/dev/null) == "$1" ]] || continue
    pid=${cwd#/proc/}
    proc_alive "${pid%/cwd}" && return 0
  done
  return 1
}

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Called only when our process is not running: anything answering on the port is a stranger.
require_free_port() {
  local name=$1 port=$2 owner=''
  port_open "$port" || return 0
  if command -v ss >/dev/null; then
    owner=$(ss -ltnpH "sport = :$port" 2>/dev/null | grep -o 'users:.*' | head -n1 || true)
  fi
  die "$name: port $port is already in use by a process that is not ours${owner:+ ($owner)}; stop it or free the port"
}

log_tail() {
  printf -- '--- tail of %s ---\n' "$1" >&2
  tail -n "${2:-30}" "$1" >&2 2>/dev/null || true
}

# wait_ready NAME PATTERN LOG CHECK...: poll CHECK until it succeeds, the deadline passes,
# or the process dies (then there is no point waiting out the deadline).
wait_ready() {
  local name=$1 pattern=$2 log=$3 deadline=$((SECONDS + READY_TIMEOUT))
  shift 3
  until "$@" >/dev/null 2>&1; do
    # The pid spawn() recorded, alive, is enough: until the forked shell has exec'd the program
    # its command line is not the program's yet, and a pattern check then failed a sound start.
    if ! pid_of "$name" "$pattern" >/dev/null && ! proc_alive "$(head -n1 "$PIDS/$name.pid" 2>/dev/null)"; then
      printf 'error: %s: process exited during start-up\n' "$name" >&2
      log_tail "$log"; exit 1
    fi
    if ((SECONDS >= deadline)); then
      printf 'error: %s: not ready after %ss\n' "$name" "$READY_TIMEOUT" >&2
      log_tail "$log"; exit 1
    fi
    sleep 0.3
  done
}

# Start a foreground program as our background daemon: own session so a Ctrl-C in the
# terminal does not reach it, no inherited stdin/stdout (make would wait on them), and
# fd 9 (the stack lock) closed so the daemon does not hold the lock forever.
spawn() {
  local name=$1 log=$2
  shift 2
  setsid nohup "$@" </dev/null >>"$log" 2>&1 9>&- &
  printf '%s\n' "$!" >"$PIDS/$name.pid"
}

# stop_pid NAME PATTERN [SIGNAL]: ask politely, wait, then SIGKILL. Idempotent.
stop_pid() {
  local name=$1 pattern=$2 sig=${3:-TERM} pid deadline
  if ! pid=$(pid_of "$name" "$pattern"); then
    rm -f "$PIDS/$name.pid"
    say "$name: stopped"
    return 0
  fi
  kill -"$sig" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while pid_of "$name" "$pattern" >/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if pid_of "$name" "$pattern" >/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    say "$name: killed (pid $pid did not stop within ${STOP_TIMEOUT}s)"
  else
    say "$name: stopped (pid $pid)"
  fi
  rm -f "$PIDS/$name.pid"
}

status_line() {
  local pid
  if pid=$(pid_of "$1" "$2"); then say "$1: running (pid $pid)"; else say "$1: stopped"; fi
}

# For servers that daemonize themselves: the pid file may appear a moment after the
# launching command returned.
wait_for_pid_file() {
  local name=$1 pattern=$2 log=$3 deadline=$((SECONDS + 15))
  until pid_of "$name" "$pattern" >/dev/null; do
    if ((SECONDS >= deadline)); then
      printf 'error: %s: no live process in %s\n' "$name" "$PIDS/$name.pid" >&2
      log_tail "$log"; exit 1
    fi
    sleep 0.2
  done
}
