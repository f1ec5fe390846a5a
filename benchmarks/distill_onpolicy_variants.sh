#!/usr/bin/env bash
# Issue 32's remaining variants, one after the other, resumable: for each of the RFT and DPO
# configs, train (``plancode onpolicy``) and then gate on the full sets (``plancode gate``
# with its ``-full`` config). Each training resumes from its last checkpoint and each gate
# reuses its cached rows, so running this again after an interruption continues where it
# stopped. About 2 h on 2 idle cores; start it alone, nice, and time nothing while it runs.
#
#   nohup nice -n 19 benchmarks/distill_onpolicy_variants.sh > distill/onpolicy/variants.log 2>&1 &
#
# VARIANTS="rft" runs only one of them. Needs the samples stage's committed rows
# (distill/onpolicy/samples/samples.jsonl) and the 0.5B and 1.5B in the model store.
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANTS=${VARIANTS:-"rft dpo"}
source benchmarks/fetch_sources.sh  # the pinned training sources the configs read
for v in $VARIANTS; do
  echo "[variants] $(date -u +%FT%TZ) train $v"
  .venv/bin/python -m plancode onpolicy --config "configs/distill-onpolicy-$v.toml" --quiet \
    > "distill/onpolicy/onpolicy-$v.log" 2>&1
  echo "[variants] $(date -u +%FT%TZ) gate $v"
  # a refused checkpoint exits non-zero: that is a result, and the next variant still runs
  .venv/bin/python -m plancode gate --config "configs/distill-onpolicy-$v-full.toml" --quiet \
    > "distill/onpolicy/gate-$v.log" 2>&1 || echo "[variants] gate $v: refused (exit $?)"
  tail -n 3 "distill/onpolicy/gate-$v.log"
done
echo "[variants] $(date -u +%FT%TZ) done"
