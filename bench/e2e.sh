#!/usr/bin/env bash
# End-to-end HTTP benchmark (issue #11, "The harness / End to end").
#
# For every round and, inside it, every scenario x peer (the peers' order
# rotated each round), it starts `e2e_server` pinned to one core, makes
# sessions with POST /login, loads the server with `wrk` pinned to the other
# core over loopback, and reads requests/s, p50/p99 latency and the server's
# CPU time per request. It prints one Markdown table on stdout; the raw
# per-round numbers, wrk's and the servers' output go to
# <target>/e2e/<timestamp>/ (printed on stderr). See bench/README.md.
#
# Knobs (environment): E2E_SECS (5), E2E_ROUNDS (3), E2E_CONNS (32),
# E2E_SESSIONS (256), E2E_WARMUP (1, seconds of unmeasured load before each
# measurement; 0 skips it), E2E_PEERS ("bare typed typed_cached tower typed_redis
# tower_redis"), E2E_SCENARIOS ("read write create"), E2E_SERVER_CORE (0),
# E2E_CLIENT_CORE (1), E2E_POOL (6, the fred pool size of tower_redis).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

secs=${E2E_SECS:-5}
rounds=${E2E_ROUNDS:-3}
conns=${E2E_CONNS:-32}
sessions=${E2E_SESSIONS:-256}
warmup=${E2E_WARMUP:-1}
read -r -a peers <<<"${E2E_PEERS:-bare typed typed_cached tower typed_redis tower_redis}"
read -r -a scenarios <<<"${E2E_SCENARIOS:-read write create}"
server_core=${E2E_SERVER_CORE:-0}
client_core=${E2E_CLIENT_CORE:-1}
pool=${E2E_POOL:-6}

die() {
  echo "e2e.sh: $*" >&2
  exit 1
}

for n in secs rounds conns sessions warmup server_core client_core pool; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a whole number, not '${!n}'"
done
((secs > 0 && rounds > 0 && conns > 0 && sessions > 0)) || die "E2E_SECS, E2E_ROUNDS, E2E_CONNS and E2E_SESSIONS must be positive"
((${#peers[@]} > 0 && ${#scenarios[@]} > 0)) || die "no peers or no scenarios"
for p in "${peers[@]}"; do
  case $p in bare | typed | typed_cached | tower | typed_redis | tower_redis) ;; *) die "unknown peer '$p'" ;; esac
done
for s in "${scenarios[@]}"; do
  case $s in read | write | create) ;; *) die "unknown scenario '$s' (read, write, create)" ;; esac
done

# ------------------------------------------------------------- clean-up

# Every process this script starts is recorded here and killed, by pid, on
# exit (normal, failure, Ctrl-C or TERM).
declare -A started=()
cleanup() {
  local pid
  for pid in "${!started[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${!started[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  started=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop() {
  local pid=$1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "started[$pid]"
}

# --------------------------------------------------------------- set-up

need() { command -v "$1" >/dev/null || die "$1 is required ($2)"; }
need cargo "the Rust toolchain"
need curl "apt-get install curl"
need taskset "util-linux"
need getconf "libc-bin"
if ! command -v wrk >/dev/null; then
  echo "e2e.sh: installing wrk (apt-get install -y wrk)" >&2
  if ! apt-get install -y wrk >&2; then
    { apt-get update >&2 && apt-get install -y wrk >&2; } || die "could not install wrk (apt-get install -y wrk)"
  fi
fi
uses_redis=0
for p in "${peers[@]}"; do [[ $p == *_redis ]] && uses_redis=1; done
if ((uses_redis)); then
  need redis-server "apt-get install redis-server"
  need redis-cli "apt-get install redis-server"
fi
ncores=$(nproc --all)
((server_core < ncores && client_core < ncores)) || die "cores $server_core and $client_core: this machine has $ncores"

target_dir=${CARGO_TARGET_DIR:-$here/target}
echo "e2e.sh: cargo build --release --bin e2e_server" >&2
cargo build --release --bin e2e_server >&2
server_bin=$target_dir/release/e2e_server
[[ -x $server_bin ]] || die "no server binary at $server_bin"

clk_tck=$(getconf CLK_TCK)
out_dir=$target_dir/e2e/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out_dir"
raw=$out_dir/raw.tsv
printf 'round\tscenario\tpeer\treq_per_s\tp50_us\tp99_us\trequests\tduration_s\tserver_cpu_us_per_req\tserver_busy\tredis_cpu_us_per_req\twrk_busy\tserver_runqueue\n' >"$raw"
echo "e2e.sh: raw numbers and logs in $out_dir" >&2

# A loopback port for redis-server: below the ephemeral range (where a
# client connection's local port could be taken) and with nobody listening.
free_port() {
  local port low
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  ((low > 11000)) || low=61000
  for _ in $(seq 100); do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free loopback port found"
}

# Waits (10 s at most) until process $2 accepts connections on port $1.
wait_port() {
  local port=$1 pid=$2
  for _ in $(seq 500); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
    kill -0 "$pid" 2>/dev/null || die "process $pid exited before listening on $port"
    sleep 0.02
  done
  die "nothing listens on port $port after 10 s"
}

# Starts e2e_server (arguments: its own), pinned to the server core, on a
# port the system picks; sets $pid and $base_url.
start_server() {
  local log=$1
  shift
  : >"$log" # exists before the background child opens it, for the loop below
  taskset -c "$server_core" "$server_bin" --port 0 "$@" >"$log" 2>&1 &
  pid=$!
  started[$pid]=1
  local port=""
  for _ in $(seq 500); do
    port=$(sed -n 's|^e2e_server: peer .* on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$log")
    [[ -n $port ]] && break
    kill -0 "$pid" 2>/dev/null || die "e2e_server $* exited: $(cat "$log")"
    sleep 0.02
  done
  [[ -n $port ]] || die "e2e_server $* does not listen after 10 s (see $log)"
  base_url="http://127.0.0.1:$port"
  wait_port "$port" "$pid"
}

redis_url=""
redis_pid=""
if ((uses_redis)); then
  for attempt in 1 2 3; do
    redis_port=$(free_port)
    taskset -c "$client_core" redis-server --port "$redis_port" --bind 127.0.0.1 \
      --save "" --appendonly no --dir "$out_dir" >"$out_dir/redis.log" 2>&1 &
    redis_pid=$!
    started[$redis_pid]=1
    sleep 0.1
    kill -0 "$redis_pid" 2>/dev/null && break
    unset "started[$redis_pid]"
    ((attempt < 3)) || die "redis-server does not start: $(cat "$out_dir/redis.log")"
  done
  wait_port "$redis_port" "$redis_pid"
  for _ in $(seq 250); do
    [[ $(redis-cli -p "$redis_port" PING 2>/dev/null) == PONG ]] && break
    sleep 0.02
  done
  [[ $(redis-cli -p "$redis_port" PING) == PONG ]] || die "redis-server does not answer PING"
  redis_url="redis://127.0.0.1:$redis_port/"
  echo "e2e.sh: redis-server $(redis-cli -p "$redis_port" INFO server | tr -d '\r' | sed -n 's/^redis_version://p') on core $client_core, $redis_url (pid $redis_pid)" >&2
fi

# The CPU time (user + system) of a process so far, in clock ticks.
# Time the process's threads spent runnable but waiting for a CPU so far, in
# ns (the second field of /proc/<pid>/task/*/schedstat).
run_delay_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%.0f", s }'
}

cpu_ticks() {
  local stat rest fields
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  read -r -a fields <<<"$rest"
  # Fields 14 and 15 of the line (utime, stime): 11 and 12 after the name.
  echo $((fields[11] + fields[12]))
}

# Redis's CPU time so far, in seconds (INFO cpu).
redis_cpu() {
  redis-cli -p "$redis_port" INFO cpu | tr -d '\r' |
    awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" { s += $2 } END { printf "%.6f", s }'
}

route_of() {
  case $1 in
    read) echo "GET /read" ;;
    write) echo "POST /write" ;;
    create) echo "POST /create" ;;
  esac
}

# Checks a response body: the profile's user name and a visit count.
visits_in() {
  [[ $1 =~ ^alice\.liddell:([0-9]+)$ ]] || die "$2: unexpected body '$1'"
  echo "${BASH_REMATCH[1]}"
}

# Runs wrk against the server; its output goes to $1, and its CPU time
# (user + system, seconds) to $wrk_cpu. Fails on any non-2xx/3xx response or
# socket error.
run_wrk() {
  local out=$1 duration=$2 method=$3 path=$4 cookies=$5 label=$6
  local TIMEFORMAT='%3U %3S' times
  { time E2E_METHOD=$method E2E_PATH=$path E2E_COOKIES=$cookies \
    timeout --foreground $((duration + 60)) taskset -c "$client_core" \
    wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$here/e2e.lua" "$base_url$path" >"$out" 2>&1; } 2>"$out.time" ||
    die "$label: wrk failed, see $out"
  read -r -a times <"$out.time"
  rm -f "$out.time"
  wrk_cpu=$(awk -v u="${times[0]}" -v s="${times[1]}" 'BEGIN { printf "%.3f", u + s }')
  if grep -q 'Non-2xx or 3xx responses' "$out"; then
    die "$label: $(grep 'Non-2xx or 3xx responses' "$out") (see $out)"
  fi
  result=$(grep '^E2E_RESULT ' "$out") || die "$label: no E2E_RESULT line in $out"
  local kv
  for kv in ${result#E2E_RESULT }; do
    [[ $kv =~ ^(status|connect|read|write|timeout)=([0-9]+)$ ]] || continue
    ((BASH_REMATCH[2] == 0)) || die "$label: wrk counted ${BASH_REMATCH[2]} $([[ ${BASH_REMATCH[1]} == status ]] && echo 'non-2xx/3xx responses' || echo "${BASH_REMATCH[1]} errors") (see $out)"
  done
}

field() { # field NAME in $result
  local kv
  for kv in ${result#E2E_RESULT }; do
    [[ $kv == "$1="* ]] && echo "${kv#*=}" && return
  done
  die "no $1 in '$result'"
}

run_one() {
  local round=$1 scenario=$2 peer=$3
  local label="round $round $scenario/$peer"
  local tag="r${round}-${scenario}-${peer}"
  local method path args=() cookies=""
  read -r method path <<<"$(route_of "$scenario")"
  if [[ $peer == *_redis ]]; then
    # Every Redis run starts from an empty database (D fills it).
    redis-cli -p "$redis_port" FLUSHALL >/dev/null
    args+=(--redis-url "$redis_url")
    [[ $peer == tower_redis ]] && args+=(--pool "$pool")
  fi
  start_server "$out_dir/$tag.server.log" --peer "$peer" "${args[@]}"

  # Sessions, one POST /login each, over one keep-alive connection.
  if [[ $scenario != create ]]; then
    cookies=$out_dir/$tag.cookies
    local config=$out_dir/$tag.curl
    for _ in $(seq "$sessions"); do
      printf 'url = "%s/login"\noutput = "/dev/null"\n' "$base_url"
    done >"$config"
    curl -sS --fail -X POST -D - -K "$config" |
      tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: *\([^;]*\).*/\1/p' >"$cookies"
    rm -f "$config"
    local made
    made=$(wc -l <"$cookies")
    ((made == sessions)) || die "$label: $made cookies from $sessions logins"
  fi

  # Sanity check (untimed): a read sees the profile and sets no cookie, a
  # write persists, a create sets a cookie (the session peers).
  local headers body before after
  headers=$out_dir/$tag.headers
  if [[ $scenario == create ]]; then
    body=$(curl -sS --fail -X POST -D "$headers" "$base_url/create")
    after=$(visits_in "$body" "$label: create")
    ((after == 1000)) || die "$label: create answered '$body'"
    if [[ $peer != bare ]]; then
      grep -qi '^set-cookie: session=' "$headers" || die "$label: create set no cookie"
    fi
  else
    local cookie
    cookie=$(head -n1 "$cookies")
    body=$(curl -sS --fail -D "$headers" -H "Cookie: $cookie" "$base_url/read")
    before=$(visits_in "$body" "$label: read")
    if grep -qi '^set-cookie:' "$headers"; then die "$label: a read set a cookie"; fi
    body=$(curl -sS --fail -X POST -H "Cookie: $cookie" "$base_url/write")
    after=$(visits_in "$body" "$label: write")
    ((after == before + 1)) || die "$label: write answered $after after $before"
    body=$(curl -sS --fail -H "Cookie: $cookie" "$base_url/read")
    before=$(visits_in "$body" "$label: read")
    ((before == after)) || die "$label: the write did not persist"
  fi
  rm -f "$headers"

  if ((warmup > 0)); then
    run_wrk "$out_dir/$tag.warmup.txt" "$warmup" "$method" "$path" "$cookies" "$label (warm-up)"
  fi
  local t0 t1 w0 w1 r0="" r1=""
  [[ $peer == *_redis ]] && r0=$(redis_cpu)
  t0=$(cpu_ticks "$pid")
  w0=$(run_delay_ns "$pid")
  run_wrk "$out_dir/$tag.wrk.txt" "$secs" "$method" "$path" "$cookies" "$label"
  t1=$(cpu_ticks "$pid")
  w1=$(run_delay_ns "$pid")
  [[ $peer == *_redis ]] && r1=$(redis_cpu)
  kill -0 "$pid" 2>/dev/null || die "$label: the server died (see $out_dir/$tag.server.log)"
  stop "$pid"

  local requests duration_us p50 p99
  requests=$(field requests)
  duration_us=$(field duration_us)
  p50=$(field p50_us)
  p99=$(field p99_us)
  ((requests > 0)) || die "$label: no requests completed"
  awk -v round="$round" -v s="$scenario" -v p="$peer" -v n="$requests" -v d="$duration_us" \
    -v p50="$p50" -v p99="$p99" -v ticks=$((t1 - t0)) -v hz="$clk_tck" -v r0="$r0" -v r1="$r1" -v wrk="$wrk_cpu" -v wait_ns=$((w1 - w0)) '
    BEGIN {
      secs = d / 1e6; cpu = ticks / hz
      redis = (r0 == "" ? "" : sprintf("%.2f", (r1 - r0) * 1e6 / n))
      printf "%s\t%s\t%s\t%.0f\t%d\t%d\t%d\t%.3f\t%.2f\t%.3f\t%s\t%.3f\t%.3f\n",
        round, s, p, n / secs, p50, p99, n, secs, cpu * 1e6 / n, cpu / secs, redis, wrk / secs, wait_ns / 1e9 / secs
    }' >>"$raw"
  tail -n1 "$raw" | awk -F'\t' '{
    printf "e2e.sh: round %s %s/%s: %s req/s, p50 %s us, p99 %s us, server %s us CPU/req (core %.0f%% busy, %.0f%% waiting for it)%s, wrk core %.0f%% busy\n",
      $1, $2, $3, $4, $5, $6, $9, $10 * 100, $13 * 100, ($11 == "" ? "" : ", Redis " $11 " us CPU/req"), $12 * 100 }' >&2
}

# ----------------------------------------------------------------- runs

runs=$((rounds * ${#scenarios[@]} * ${#peers[@]}))
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "e2e.sh: $runs runs of ${warmup} s warm-up + ${secs} s, about $((runs * (secs + warmup + 1))) s in all; load average $load_start" >&2

for round in $(seq "$rounds"); do
  for scenario in "${scenarios[@]}"; do
    n=${#peers[@]}
    for ((i = 0; i < n; i++)); do
      run_one "$round" "$scenario" "${peers[(i + round - 1) % n]}"
    done
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- table

echo "End to end: server (current-thread tokio) on core $server_core, wrk -t1 -c$conns on core $client_core$( ((uses_redis)) && echo " with redis-server"), loopback; $rounds rounds of ${secs} s per scenario and peer, medians of the rounds; load average $load_start at the start, $load_end at the end."
echo
awk -F'\t' -v peers="${peers[*]}" -v scenarios="${scenarios[*]}" '
  function median(list,    a, n, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function add(key, value) { vals[key] = (key in vals) ? vals[key] " " value : value }
  function label(s, p) {
    if (p == "bare") return s " (A)"
    return s " (" (s == "read" ? "B" : s == "write" ? "C" : "D") ")"
  }
  # Median over the rounds of a/b, from the same round.
  function ratio(s, a, b, col,    r, list) {
    list = ""
    for (r in rounds) if (((r, s, a) in row) && ((r, s, b) in row))
      list = list " " (row[r, s, a, col] / row[r, s, b, col])
    return median(list)
  }
  function target_of(s, a, b) {
    if ((a == "typed" || a == "typed_cached") && b == "bare" && s == "read") return 0.95
    if ((a == "typed" || a == "typed_cached") && b == "bare" && s == "write") return 0.90
    if (a == "typed_redis" && b == "tower_redis" && (s == "read" || s == "write")) return 1.5
    return ""
  }
  function verdict(s, a, b, x,    t) {
    t = target_of(s, a, b)
    if (t == "" || x == "") return ""
    return sprintf("≥ %.2f: %s", t, x >= t ? "met" : "**missed**")
  }
  NR == 1 { next }
  {
    r = $1; s = $2; p = $3; rounds[r] = 1
    row[r, s, p] = 1; row[r, s, p, "rps"] = $4; row[r, s, p, "cpu"] = $9
    add(s SUBSEP p SUBSEP "rps", $4); add(s SUBSEP p SUBSEP "p50", $5); add(s SUBSEP p SUBSEP "p99", $6)
    add(s SUBSEP p SUBSEP "cpu", $9); add(s SUBSEP p SUBSEP "busy", $10); add(s SUBSEP p SUBSEP "wrk", $12); add(s SUBSEP p SUBSEP "wait", $13)
    if ($11 != "") add(s SUBSEP p SUBSEP "redis", $11)
    seen[s, p] = 1
  }
  END {
    np = split(peers, P, " "); ns = split(scenarios, S, " ")
    print "| scenario | peer | median req/s | p50 µs | p99 µs | server CPU µs/req | server core busy | server waiting for its core | wrk core busy | Redis CPU µs/req | req/s ratio (peer rows: to bare A; pair rows: first / second) | target |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for (i = 1; i <= ns; i++) {
      s = S[i]
      for (j = 1; j <= np; j++) {
        p = P[j]
        if (!((s, p) in seen)) continue
        k = s SUBSEP p SUBSEP
        redis = ((k "redis") in vals) ? sprintf("%.1f", median(vals[k "redis"])) : "–"
        x = ((s, "bare") in seen) ? ratio(s, p, "bare", "rps") : ""
        printf "| %s | %s | %.0f | %.0f | %.0f | %.1f | %.0f %% | %.0f %% | %.0f %% | %s | %s | %s |\n", label(s, p), p,
          median(vals[k "rps"]), median(vals[k "p50"]), median(vals[k "p99"]),
          median(vals[k "cpu"]), median(vals[k "busy"]) * 100, median(vals[k "wait"]) * 100,
          median(vals[k "wrk"]) * 100, redis,
          (x == "" ? "–" : sprintf("%.3f", x)), verdict(s, p, "bare", x)
      }
      npair = split("typed/tower typed_cached/tower typed_redis/tower_redis", pairs, " ")
      for (j = 1; j <= npair; j++) {
        split(pairs[j], ab, "/")
        if (!((s, ab[1]) in seen) || !((s, ab[2]) in seen)) continue
        x = ratio(s, ab[1], ab[2], "rps")
        c = ratio(s, ab[1], ab[2], "cpu")
        printf "| %s | %s / %s | | | | %.3f (CPU ratio) | | | | | %.3f | %s |\n", label(s, ab[1]), ab[1], ab[2], c, x, verdict(s, ab[1], ab[2], x)
      }
    }
  }' "$raw"
echo "e2e.sh: raw per-round numbers: $raw" >&2
