#!/usr/bin/env bash
# Issue 32's on-policy data: the samples stage of configs/distill-onpolicy.toml (the student's
# own answers to the training problems, judged by their tests, scored token by token by the
# teacher), on this project's CPU machine, resumable.
#
#   mkdir -p distill/onpolicy
#   nohup nice -n 19 benchmarks/distill_onpolicy.sh > distill/onpolicy/run.log 2>&1 &
#
# Rows are appended to distill/onpolicy/samples/samples.jsonl one answer at a time; running
# this again after an interruption (here or on a fresh checkout with that file committed)
# answers only the problems it lacks. The file grows past what the checkout may carry: before
# committing its rows, pack it (the stage restores it from the store when it next runs):
#   .venv/bin/python -m plancode.trainer.blobs pack distill/onpolicy --glob 'samples/*.jsonl'
# and commit distill/onpolicy/blobs.json with distill/blobs/. LIMIT=N stops after N problems with new answers.
# llama.cpp threads: samples.n_threads (1 in the config: on two busy cores one thread was
# faster than two, DESIGN.md; alone on the machine: CONFIG=configs/distill-onpolicy-alone.toml);
# with 0 there, PLANCODE_N_THREADS, else every core.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-configs/distill-onpolicy.toml}
LIMIT=${LIMIT:-0}
source benchmarks/fetch_sources.sh  # the pinned training sources
echo "[distill_onpolicy] $(date -u +%FT%TZ) pid $$ config: $CONFIG"
exec .venv/bin/plancode samples --config "$CONFIG" --limit "$LIMIT"
