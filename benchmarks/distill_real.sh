#!/usr/bin/env bash
# The real distillation on this project's CPU machine, stage by stage, resumable.
#
#   nohup nice -n 19 benchmarks/distill_real.sh > distill/real/run.log 2>&1 &
#
# Every stage skips what distill/real/ already holds (finished stages by fingerprint, plans
# and verdicts row by row, training from its last checkpoint), so running this again after an
# interruption, on this machine or a fresh checkout, continues where it stopped. STAGES picks
# the stages (default: everything up to and including verification, the CPU-hours part that
# needs no decision; add "train export eval" to go on).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGES=${STAGES:-"data plans verify"}
CONFIG=${CONFIG:-configs/distill-real.toml}
args=()
for s in $STAGES; do args+=(--stage "$s"); done
source benchmarks/fetch_sources.sh  # the pinned training sources
echo "[distill_real] $(date -u +%FT%TZ) pid $$ stages: $STAGES"
exec .venv/bin/plancode distill --config "$CONFIG" "${args[@]}"
