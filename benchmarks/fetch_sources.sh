#!/usr/bin/env bash
# The distillation runs' training sources: pinned sdists, unpacked (not installed) next to each
# other under data/src. Sourced by distill_real.sh and distill_onpolicy.sh from the repo root.
if [ ! -d data/src/networkx-3.6.1 ]; then
  mkdir -p data/src
  .venv/bin/python -m pip download --no-deps --no-binary :all: -d data/src \
    more-itertools==11.2.1 boltons==26.2.0 algorithms==1.0.1 networkx==3.6.1 \
    toolz==1.2.0 pydash==8.1.0
  (cd data/src && for f in *.tar.gz; do tar xzf "$f"; done)
fi
