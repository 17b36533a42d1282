# Shared by scripts/run, scripts/test, scripts/bench and scripts/faults. Source it; do not run it.
# Installs what the project needs (Debian packages, a project-local venv with pinned Prefect) and starts or
# stops local Prefect servers by process group. Our own variables never start with PREFECT_ (Prefect's CLI
# reads every PREFECT_* variable as a setting).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PREFECT_PIN="prefect==3.9.1"
STARTED_PGIDS=()

say() { printf '==> %s\n' "$*" >&2; }

ensure_packages() {
  local need=()
  for pkg in libcurl4-openssl-dev libssl-dev libseccomp-dev pkg-config curl bubblewrap universal-ctags "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    say "installing Debian packages: ${need[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    # Another apt-get (unattended-upgrades, a second script) may hold the dpkg lock: wait for it, up to 10 minutes.
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
  fi
}

ensure_venv() {
  if [ -x "$VENV/bin/prefect" ] && "$VENV/bin/python" -c 'import importlib.metadata as m; assert m.version("prefect")=="3.9.1"' 2>/dev/null; then
    return
  fi
  say "installing $PREFECT_PIN into .venv (about a minute)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "$PREFECT_PIN"
}

# ensure_sdists: the PyPI source releases the real-repository tests build git repositories from, downloaded once
# into .cache/pypi (never vendored here). Prints the folder.
PYPI_SDISTS="tabulate==0.9.0 python-slugify==8.0.4 click==8.1.7 requests==2.32.3"
ensure_sdists() {
  local dir="$ROOT/.cache/pypi" want
  mkdir -p "$dir"
  for want in $PYPI_SDISTS; do
    ls "$dir/${want%%==*}-${want##*==}.tar.gz" >/dev/null 2>&1 || {
      say "downloading the source releases for the real-repository tests (PyPI)"
      "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: -d "$dir" $PYPI_SDISTS >&2
      break
    }
  done
  echo "$dir"
}

# no_warnings LOG: fails when the build log shows a warning in our own code (dependencies' warnings are theirs).
no_warnings() {
  local found
  found=$(grep -E "^$ROOT/(Sources|flows|Tests|Fuzz)/[^:]+:[0-9]+:[0-9]+: warning:" "$1" | sort -u || true)
  if [ -n "$found" ]; then
    say "the build warns in our own code (fix it; warnings are not allowed here):"
    printf '%s\n' "$found" >&2
    return 1
  fi
}

# free_port: prints a free TCP port on 127.0.0.1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# start_server PORT HOME [VAR=value ...]: starts `prefect server start` in its own process group and waits for /health.
start_server() {
  local port=$1 home=$2; shift 2
  mkdir -p "$home"
  say "starting Prefect server on 127.0.0.1:$port (PREFECT_HOME=${home#$ROOT/})"
  env PREFECT_HOME="$home" PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_SERVER_API_HOST=127.0.0.1 \
      PREFECT_SERVER_API_PORT="$port" PREFECT_UI_API_URL="http://127.0.0.1:$port/api" \
      PREFECT_SERVER_LOGGING_LEVEL=WARNING PREFECT_API_URL="http://127.0.0.1:$port/api" "$@" \
      setsid "$VENV/bin/prefect" server start --host 127.0.0.1 --port "$port" >"$home/server.log" 2>&1 &
  local pid=$!
  STARTED_PGIDS+=("$pid")
  echo "$pid" >"$home/server.pid"
  local i
  for i in $(seq 1 240); do
    if curl -fsS "http://127.0.0.1:$port/api/health" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then say "Prefect server exited; log:"; tail -20 "$home/server.log" >&2; return 1; fi
    sleep 0.5
  done
  say "Prefect server did not answer /health within 120 s; log:"; tail -20 "$home/server.log" >&2; return 1
}

# start_postgres DIR PORT: a project-local PostgreSQL cluster (Debian's postgresql package) in DIR, listening on
# 127.0.0.1:PORT only (its socket in DIR), with a database "prefect" owned by the user "prefect" (trust auth, loopback
# only). initdb refuses root: as root the cluster belongs to Debian's "postgres" user. Stop it with stop_postgres DIR.
start_postgres() {
  local dir=$1 port=$2 bin as=()
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] || { say "PostgreSQL is not installed (Debian package postgresql)"; return 1; }
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; as=(setpriv --reuid=postgres --regid=postgres --init-groups --); fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U prefect -E UTF8 >"$dir/initdb.log" 2>&1 || { tail -5 "$dir/initdb.log" >&2; return 1; }
  fi
  say "starting PostgreSQL on 127.0.0.1:$port (${dir#$ROOT/})"
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
    || { tail -5 "$dir/postgres.log" >&2; return 1; }
  "$bin/psql" -h 127.0.0.1 -p "$port" -U prefect -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='prefect'" | grep -q 1 \
    || "$bin/createdb" -h 127.0.0.1 -p "$port" -U prefect prefect
}

# stop_postgres DIR: stops the cluster in DIR by its postmaster's PID (a fast shutdown), waiting up to 30 s.
stop_postgres() {
  local dir=$1 pid
  [ -f "$dir/data/postmaster.pid" ] || return 0
  pid=$(head -1 "$dir/data/postmaster.pid")
  kill -INT "$pid" 2>/dev/null || return 0
  local i; for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# stop_server_pid PID: stops one server's whole process group.
stop_server_pid() {
  local pid=$1
  kill -TERM -- "-$pid" 2>/dev/null || true
  local i; for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

stop_servers() {
  local pid
  for pid in "${STARTED_PGIDS[@]:-}"; do [ -n "$pid" ] && stop_server_pid "$pid"; done
  STARTED_PGIDS=()
}

# git_commit: the checkout's HEAD, with -dirty when tracked files have uncommitted changes ("unknown" outside git).
# Builds pass it as AUTONOMY_GIT_COMMIT for `autonomy --version` (SwiftPM re-reads Package.swift when it changes).
git_commit() {
  local commit
  commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null) || { echo unknown; return; }
  [ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ] || commit="$commit-dirty"
  echo "$commit"
}

# How scripts/package links the worker after the Swift driver's -use-ld=lld (scripts/bench links its reference
# programs the same way): the PIE's relative relocations packed as DT_RELR (glibc >= 2.36) and no dynamic symbol
# table for the binary's own functions. Both for idle memory: see scripts/package.
LINK_FLAGS=(-Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic)

# build_autonomy [debug|release]: builds the CLI and prints its path.
build_autonomy() {
  local config=${1:-debug}
  (cd "$ROOT" && AUTONOMY_GIT_COMMIT=$(git_commit) swift build -c "$config" --product autonomy >&2)
  echo "$ROOT/.build/$config/autonomy"
}
