#!/usr/bin/env bash
# Instructions executed per request, per case and peer, under callgrind:
# deterministic, unlike wall-clock times on a shared machine. Each case runs
# N1 and N2 requests (PROFILE_LOOP mode of the bench binary); the difference
# divided by N2 - N1 cancels setup costs. Needs valgrind. Usage:
#   ./instructions.sh                  # the `requests` bench, all nine cases
#   ./instructions.sh write/typed_sessions
#   BENCH=cookie ./instructions.sh     # the `cookie` bench, all ten cases
#   BENCH=cookie ./instructions.sh read/typed_signed
# Note: valgrind hides SHA-NI, so SHA-256 (typed-sessions' id hashing, the
# HMAC of signed cookies) costs more instructions here than it does natively.
set -euo pipefail
cd "$(dirname "$0")"
N1=${N1:-1000}
N2=${N2:-11000}
BENCH=${BENCH:-requests}
case "$BENCH" in
  requests) peers=(bare_axum typed_sessions tower_sessions); scenarios=(read write create) ;;
  cookie) peers=(bare_axum typed_private typed_signed axum_extra_private axum_extra_signed); scenarios=(read write) ;;
  *) echo "unknown BENCH=$BENCH (requests or cookie)" >&2; exit 2 ;;
esac
bin=$(cargo bench --bench "$BENCH" --no-run --message-format=json 2>/dev/null \
  | grep -o "\"executable\":\"[^\"]*/$BENCH-[^\"]*\"" | tail -1 | cut -d'"' -f4)
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
  for s in "${scenarios[@]}"; do
    for p in "${peers[@]}"; do cases+=("$s/$p"); done
  done
fi
ir() {
  PROFILE_LOOP="$1:$2" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for c in "${cases[@]}"; do
  a=$(ir "$c" "$N1")
  b=$(ir "$c" "$N2")
  echo "$c $(( (b - a) / (N2 - N1) )) instructions/request"
done
