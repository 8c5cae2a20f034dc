#!/usr/bin/env bash
# Simulated power loss over many seeds (CI runs the first 300): LEDGER_POWER_LOSS_SEEDS (default
# 10,000) crashes of concurrent appends, each undoing what was not synced in one of three ways,
# then a reopen that must hold every acknowledged event and verify. Uses the release test build.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release -Xswiftc -enable-testing --build-tests --build-path .build-test
LEDGER_POWER_LOSS_SEEDS="${LEDGER_POWER_LOSS_SEEDS:-10000}" \
  swift test -c release -Xswiftc -enable-testing --build-path .build-test --skip-build --filter PowerLossTests
