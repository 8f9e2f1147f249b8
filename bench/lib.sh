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

# start_agora DATA_DIR OUTPUT: `agora serve` on 127.0.0.1:$PORT with a fresh administrator
# token, standard output and error in OUTPUT.out and OUTPUT.err; AGORA_* variables of the
# caller (or set before the call) reach it. Sets PID, TOKEN and A (its URL) and returns
# once it answers /ready.
start_agora() {
  TOKEN=agora_bench_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  AGORA_ADMIN_TOKEN=$TOKEN AGORA_LOG__LEVEL=${AGORA_LOG__LEVEL:-warn} \
    "$AGORA" serve --data-dir "$1" --listen "127.0.0.1:$PORT" >"$2.out" 2>"$2.err" &
  PID=$!
  A=http://127.0.0.1:$PORT
  for _ in $(seq 200); do curl -sf -o /dev/null -m 1 "$A/ready" && break; sleep 0.1; done
}

# cli ARGS...: the agora command line against that server as its administrator, with its
# configuration and home under $B.
cli() { AGORA_REGISTRY=$A AGORA_TOKEN=$TOKEN XDG_CONFIG_HOME=$B/cfg HOME=$B "$AGORA" "$@"; }
