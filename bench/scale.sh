#!/usr/bin/env bash
# Scale-out, in one run:
#   - blobs on S3 versus the local filesystem: the same server (SQLite metadata) once with
#     its blobs in a directory and once in a bucket of the moto S3 server, PUBLISHES
#     publishes of a 50 MiB release each (client-measured), then, RUNS times
#     round-robin, wrk on 1 MiB (16 connections) and 50 MiB (4 connections) downloads;
#     and the cost of a download answered with a redirect to a presigned URL
#     (`[blobs] downloads = "redirect"`: 307s per second; the bytes then come from the
#     bucket or a CDN, not from Agora);
#   - metadata requests/s with two replicas versus one: `agora serve` processes on one
#     PostgreSQL database and one blob directory behind nginx (round robin), version-detail
#     GETs at 64 connections through nginx to one replica, then to two.
# moto is a Python S3 emulator: its figures show what Agora adds on top of a slow S3, not
# what a real S3 or MinIO would sustain. All servers and wrk share this machine's cores.
#
#   RUNS=3 DUR=10s bash bench/scale.sh      # prints a markdown report
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS=${RUNS:-3}
DUR=${DUR:-10s}
PUBLISHES=${PUBLISHES:-3}
B=${B:-/tmp/agora-bench-scale}
PORT=${PORT:-18096}
S3_PORT=${S3_PORT:-18097}
FS_PORT=${FS_PORT:-18098}
REP1_PORT=${REP1_PORT:-18099}
REP2_PORT=${REP2_PORT:-18100}
LB1_PORT=${LB1_PORT:-18101}
LB2_PORT=${LB2_PORT:-18102}
MOTO_PORT=${MOTO_PORT:-18103}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
command -v wrk >/dev/null && command -v nginx >/dev/null && command -v psql >/dev/null || {
  apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk nginx curl postgresql-client >/dev/null
}
python3 -c 'import moto.server, flask' 2>/dev/null || python3 -m pip install --quiet 'moto[server]==5.2.5'
[[ -x $AGORA && -x $BENCH && ${SKIP_BUILD:-0} == 1 ]] || build_release
rm -rf "$B" && mkdir -p "$B/results" "$B/nginx/tmp"
R=$B/results
PIDS=()
stop_all() {
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && wait "$p" 2>/dev/null || true; done
  [[ -n ${SCHEMA:-} ]] && psql "$PG" -qAtc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
}
trap 'stop_all; cleanup' EXIT
wait_http() { for _ in $(seq 300); do curl -sf -o /dev/null -m 1 "$1" && return 0; sleep 0.1; done; log "not up: $1"; return 1; }
TOKEN=agora_bench_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export AWS_ACCESS_KEY_ID=agora-bench AWS_SECRET_ACCESS_KEY=agora-bench

# serve NAME PORT [VAR=VALUE...]: an `agora serve` on PORT with data under $B/NAME.
serve() {
  local name=$1 port=$2; shift 2
  mkdir -p "$B/$name"
  env "$@" AGORA_ADMIN_TOKEN=$TOKEN AGORA_LOG__LEVEL=warn AGORA_WORKER__IN_PROCESS=false AGORA_RATE_LIMITS__ENABLED=false \
    "$AGORA" serve --data-dir "$B/$name" --listen "127.0.0.1:$port" >"$R/$name.out" 2>"$R/$name.err" &
  PIDS+=("$!")
  wait_http "http://127.0.0.1:$port/ready"
}
cli_on() { local url=$1; shift; AGORA_REGISTRY=$url AGORA_TOKEN=$TOKEN XDG_CONFIG_HOME=$B/cfg HOME=$B "$AGORA" "$@"; }
# prepare URL: a publisher, a key, and bench/mid@1.0.0 with a 1 MiB module ($B/mid).
prepare() {
  cli_on "$1" publisher create bench >/dev/null
  [[ -f $B/bench_ed25519 ]] || cli_on "$1" keygen --out "$B/bench_ed25519" >/dev/null
  cli_on "$1" key add bench "$B/bench_ed25519.pub" >/dev/null
  AGORA_SIGNING_KEY=$B/bench_ed25519 cli_on "$1" publish "$B/mid" >/dev/null
}
mkdir -p "$B/mid"
printf 'api_version: agora/v1\npublisher: bench\nname: mid\nversion: 1.0.0\ndescription: Scale benchmark\nlicense: MIT\nruntime: { type: wasm, module: plugin.wasm }\n' >"$B/mid/plugin.yaml"
head -c $((1024 * 1024)) /dev/urandom >"$B/mid/plugin.wasm"
MID=sha256:$(sha256sum "$B/mid/plugin.wasm" | cut -d' ' -f1)

# ------------------------------------------------------------- S3 versus the filesystem
python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$R/moto.out" 2>&1 &
PIDS+=("$!")
S3=http://127.0.0.1:$MOTO_PORT
wait_http "$S3/" || true
curl -sf -X PUT "$S3/agora-bench" -o /dev/null
S3_URL="s3://agora-bench/blobs?endpoint=$S3&region=us-east-1"
serve fs "$FS_PORT"
serve s3 "$S3_PORT" AGORA_STORAGE_URL="$S3_URL"
serve s3redirect "$PORT" AGORA_STORAGE_URL="s3://agora-bench/redirect?endpoint=$S3&region=us-east-1" AGORA_BLOBS__DOWNLOADS=redirect AGORA_BLOBS__REDIRECT_TTL_SECS=3600
FS=http://127.0.0.1:$FS_PORT; S3A=http://127.0.0.1:$S3_PORT; RD=http://127.0.0.1:$PORT
for url in "$FS" "$S3A" "$RD"; do prepare "$url"; done
log "filesystem, S3 and redirecting servers up"
: >"$R/publish.tsv"
for i in $(seq 1 "$PUBLISHES"); do
  for pair in "fs $FS" "s3 $S3A"; do
    read -r name url <<<"$pair"
    "$BENCH" publish --registry "$url" --token "$TOKEN" --size-mib 50 --version "1.0.$i" >"$R/publish_${name}_$i.json"
    printf '%s\t%s\t%s\n' "$name" "$i" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["publish_mib_s"])' "$R/publish_${name}_$i.json")" >>"$R/publish.tsv"
  done
done
BIG=$(curl -sf "$FS/api/v1/plugins/bench/big/versions/1.0.1" | sed -n 's/.*"role":"module","digest":"\(sha256:[0-9a-f]*\)".*/\1/p')
BIG_S3=$(curl -sf "$S3A/api/v1/plugins/bench/big/versions/1.0.1" | sed -n 's/.*"role":"module","digest":"\(sha256:[0-9a-f]*\)".*/\1/p')
[[ -n $BIG && -n $BIG_S3 ]] || { log "no 50 MiB blob to download"; exit 1; }
cmp -s <(curl -sf "$S3A/api/v1/blobs/$MID") "$B/mid/plugin.wasm" || { log "S3 copy differs"; exit 1; }
[[ $(curl -s -o /dev/null -w '%{http_code}' "$RD/api/v1/blobs/$MID") == 307 ]] || { log "no redirect"; exit 1; }
cmp -s <(curl -sfL "$RD/api/v1/blobs/$MID") "$B/mid/plugin.wasm" || { log "redirected copy differs"; exit 1; }
# The bucket's own speed, for scale: the presigned URL of the 1 MiB blob, fetched from moto.
DIRECT=$(curl -s -o /dev/null -w '%{redirect_url}' "$RD/api/v1/blobs/$MID")

# ------------------------------------------------------------- two replicas versus one
SCHEMA=agora_bench_scale_$$
psql "$PG" -qAtc "CREATE SCHEMA $SCHEMA" >/dev/null
DB="$PG?options=-c%20search_path%3D$SCHEMA"
mkdir -p "$B/shared-blobs"
serve rep1 "$REP1_PORT" AGORA_DATABASE_URL="$DB" AGORA_BLOBS__PATH="$B/shared-blobs"
serve rep2 "$REP2_PORT" AGORA_DATABASE_URL="$DB" AGORA_BLOBS__PATH="$B/shared-blobs"
prepare "http://127.0.0.1:$REP1_PORT"
cat >"$B/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $B/nginx/nginx.pid;
error_log $B/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $B/nginx/tmp/body; proxy_temp_path $B/nginx/tmp/proxy;
  fastcgi_temp_path $B/nginx/tmp/fcgi; uwsgi_temp_path $B/nginx/tmp/uwsgi; scgi_temp_path $B/nginx/tmp/scgi;
  upstream one { server 127.0.0.1:$REP1_PORT; keepalive 64; }
  upstream two { server 127.0.0.1:$REP1_PORT; server 127.0.0.1:$REP2_PORT; keepalive 64; }
  server { listen 127.0.0.1:$LB1_PORT; location / { proxy_pass http://one; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:$LB2_PORT; location / { proxy_pass http://two; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
nginx -c "$B/nginx/nginx.conf" -g 'daemon off;' 2>>"$B/nginx/stderr.log" &
PIDS+=("$!")
META=/api/v1/plugins/bench/mid/versions/1.0.0
wait_http "http://127.0.0.1:$LB2_PORT$META"
log "two replicas on PostgreSQL behind nginx up"

WORKLOADS=(
  "fs_blob1m 2 16 $FS/api/v1/blobs/$MID"
  "s3_blob1m 2 16 $S3A/api/v1/blobs/$MID"
  "moto_1m 2 16 $DIRECT"
  "fs_blob50m 2 4 $FS/api/v1/blobs/$BIG"
  "s3_blob50m 2 4 $S3A/api/v1/blobs/$BIG_S3"
  "redirect_1m 2 16 $RD/api/v1/blobs/$MID"
  "one_replica 2 64 http://127.0.0.1:$LB1_PORT$META"
  "two_replicas 2 64 http://127.0.0.1:$LB2_PORT$META"
)
NON_2XX_OK="redirect_*"
wrk_rounds
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
pub() { awk -F'\t' -v n="$1" '$1 == n {print $3}' "$R/publish.tsv" | median; }
pubspread() { awk -F'\t' -v n="$1" '$1 == n {print $3}' "$R/publish.tsv" | sort -g | awk 'NR==1{min=$1} {max=$1} END {printf "%.1f–%.1f", min, max}'; }
PUB_S3=$(pub s3); PUB_FS=$(pub fs)
cat <<REPORT
### Scale-out, $(date -u +%Y-%m-%dT%H:%MZ) — \`RUNS=$RUNS DUR=$DUR bash bench/scale.sh\`

Machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg). Agora $("$AGORA" --version | cut -d' ' -f2) (release build); S3 is moto $(python3 -c 'import moto; print(moto.__version__)') (a Python emulator, on the same cores); medians of $RUNS runs (min–max).

| workload | S3 (moto) | local filesystem | S3 / filesystem |
|---|---|---|---|
| publish of 50 MiB, upload + release (MiB/s, $PUBLISHES each) | $(printf '%.1f' "$PUB_S3") ($(pubspread s3)) | $(printf '%.1f' "$PUB_FS") ($(pubspread fs)) | $(ratio "$PUB_S3" "$PUB_FS") |
$(row "download 1 MiB, 16 connections, streamed (MiB/s)" s3_blob1m fs_blob1m 4)
$(row "download 50 MiB, 4 connections, streamed (MiB/s)" s3_blob50m fs_blob50m 4)

moto alone, serving the same 1 MiB object from a presigned URL at 16 connections: $(col moto_1m 4 | median) MiB/s ($(spread moto_1m 4)) — the ceiling of the S3 rows here, and Agora's streamed 1 MiB downloads from S3 reach $(ratio "$(col s3_blob1m 4 | median)" "$(col moto_1m 4 | median)") of it.

With \`downloads = "redirect"\`, Agora answers a 1 MiB download with a 307 to a presigned URL at $(col redirect_1m 3 | median) redirects/s (16 connections; p99 $(col redirect_1m 6 | tail -1)): the bytes then leave the bucket (or a CDN in front of it), not Agora.

| workload | two replicas | one replica | two / one |
|---|---|---|---|
$(row "version-detail GET through nginx, 64 connections (req/s)" two_replicas one_replica 3)

Both replicas run on PostgreSQL $(psql "$PG" -qAtc 'show server_version' | cut -d' ' -f1) (same machine) with one blob directory; nginx (one worker) balances round robin. On $(nproc) cores the replicas, nginx, PostgreSQL and wrk compete for the same CPUs, so this shows what a second replica costs when it brings no CPU of its own (two response caches to fill, two processes sharing the cores), not the gain more machines would bring.
REPORT
