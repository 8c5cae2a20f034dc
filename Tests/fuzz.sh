#!/usr/bin/env bash
# libFuzzer over the four fuzz targets (json, canonical, schema, batch; see Sources/LedgerCore/
# Fuzzing.swift and Sources/LedgerLog/Fuzzing+Batch.swift): LEDGER_FUZZ_RUNS executions each
# (default 10,000,000) under AddressSanitizer, starting from the kept corpus in Tests/Fuzz/corpus/.
# New coverage is merged back into the corpus (minimised); every crash input is copied to
# Tests/Fuzz/crashes/<target>/ and the script fails. `FuzzCorpusTests` runs both folders in the
# suite, so a crash found once stays a regression test.
#   Tests/fuzz.sh                 # all four targets
#   Tests/fuzz.sh json schema     # some of them
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${LEDGER_FUZZ_RUNS:-10000000}"
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(json canonical schema batch)
LEDGER_FUZZ=1 swift build -c release --build-path .build-fuzz --product ledger-fuzz
BIN=.build-fuzz/release/ledger-fuzz
failed=0
for t in "${TARGETS[@]}"; do
  corpus=Tests/Fuzz/corpus/$t
  crashes=Tests/Fuzz/crashes/$t
  work=$(mktemp -d)
  mkdir -p "$corpus" "$crashes" "$work/new" "$work/artifacts"
  echo "== $t: $RUNS runs"
  set +e
  maxlen=4096; [ "$t" = batch ] && maxlen=16384
  LEDGER_FUZZ_TARGET=$t "$BIN" -runs="$RUNS" -max_len=$maxlen -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$work/new" "$corpus" 2>&1 | tee "$work/log" | grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)" 
  status=${PIPESTATUS[0]}
  set -e
  for f in "$work"/artifacts/*; do
    [ -e "$f" ] || continue
    cp "$f" "$crashes/"
    echo "   crash input kept: $crashes/$(basename "$f")"
    failed=1
  done
  [ "$status" -eq 0 ] || failed=1
  # Keep a minimised corpus: what covers the same edges as everything found.
  mkdir -p "$work/merged"
  LEDGER_FUZZ_TARGET=$t "$BIN" -merge=1 -max_len=$maxlen "$work/merged" "$corpus" "$work/new" > "$work/merge.log" 2>&1 || true
  if [ -n "$(ls -A "$work/merged")" ]; then rm -f "$corpus"/*; cp "$work"/merged/* "$corpus"/; fi
  echo "   corpus: $(ls "$corpus" | wc -l) inputs"
  rm -rf "$work"
done
exit $failed
