#!/usr/bin/env bash
# make demo: synthetic Nuremberg lake -> whole pipeline -> what was released.
set -euo pipefail
CONF=${1:-conf/local.yaml}
DATE=${2:-2026-10-05}
PY=${PYTHON:-.venv/bin/python}

# The demo is the ONLY place that may invent keys, and only for its own throw-away lake.
if [[ -z "${MI_NETWORK_KEY:-}" && -z "${MI_NETWORK_KEY_FILE:-}" ]]; then
  MI_NETWORK_KEY=$(openssl rand -hex 32); export MI_NETWORK_KEY
  echo "WARNING: MI_NETWORK_KEY is not set; the demo generated a throw-away network key for this run only." >&2
fi
if [[ -z "${MI_DAILY_KEY:-}" && -z "${MI_DAILY_KEY_FILE:-}" ]]; then
  MI_DAILY_KEY=$(openssl rand -hex 32); export MI_DAILY_KEY
  echo "WARNING: MI_DAILY_KEY is not set; the demo generated a throw-away daily master key for this run only." >&2
fi

quiet() { grep -v -E '^(\s*$|.*WARN |::|Ivy|The jars|io\.delta|	confs|	found|	-|	\||	[|]|:: |.*artifacts (copied|dl)|Using Spark|To adjust|Setting default|.*resolution report|.*loading settings|	::|.*spark-submit-parent|	default|WARNING: Using incubator|.* in \[default\]$)' || true; }

echo "== 1/4 generating the synthetic raw lake for $DATE ($CONF)"
"$PY" -m jobs.generate_lake --conf "$CONF" --date "$DATE" ${DEMO_GEN_ARGS:-} 2>&1 | quiet
echo "== 2/4 running the pipeline"
"$PY" -m jobs.pipeline --conf "$CONF" --date "$DATE" 2>&1 | quiet
echo "== 3/4 what the lake holds and what was released"
"$PY" -m mobility.demo --conf "$CONF" --date "$DATE" 2>&1 | quiet
echo "== 4/4 location offers (explicit opt-in only): the demo campaigns' audience and merchant report"
"$PY" -m jobs.offers --conf "$CONF" --date "$DATE" 2>&1 | quiet
"$PY" -m mobility.offers_demo --conf "$CONF" --date "$DATE" 2>&1 | quiet
