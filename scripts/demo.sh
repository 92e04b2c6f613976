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

# The demo starts from an empty restricted and release zone (local paths only): a second
# demo with other generator settings would otherwise be refused, rightly, as an unsafe
# re-release of the same date (docs/privacy.md).
for zone in curated insights; do
  dir=$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["lake"][sys.argv[2]])' "$CONF" "$zone")
  case "$dir" in *://*) ;; *) rm -rf "$dir" ;; esac
done

echo "== 1/5 generating the synthetic raw lake for $DATE ($CONF)"
"$PY" -m jobs.generate_lake --conf "$CONF" --date "$DATE" ${DEMO_GEN_ARGS:-} 2>&1 | quiet
echo "== 2/5 running the pipeline"
# make demo DEMO_MODE=dp: release in the differential-privacy mode (the dp section of the config).
MODE_SET=()
case "${DEMO_MODE:-k}" in
  dp) MODE_SET=(--set privacy.mode=differential_privacy); echo "   (release mode: differential privacy)";;
  k|k_anonymity) ;;
  *) echo "error: DEMO_MODE must be k or dp, got '${DEMO_MODE}'" >&2; exit 2;;
esac
"$PY" -m jobs.pipeline --conf "$CONF" --date "$DATE" "${MODE_SET[@]}" 2>&1 | quiet
echo "== 3/5 what the lake holds and what was released"
"$PY" -m mobility.demo --conf "$CONF" --date "$DATE" 2>&1 | quiet
echo "== 4/5 reports for buyers (built from the released tables only)"
"$PY" -m jobs.report --conf "$CONF" --date "$DATE" 2>&1 | quiet
"$PY" -m jobs.store_report --conf "$CONF" --date "$DATE" --stores "${DEMO_STORES:-conf/demo_stores.csv}" 2>&1 | quiet
REPORTS=$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["lake"]["reports"])' "$CONF")
echo "map of the day (open in a browser, works offline): $REPORTS/buyers/$DATE/map.html"
echo "peak hour as PNG:                                  $REPORTS/buyers/$DATE/peak_hour.png"
echo "store report (CSV, PNG per store, README.txt):     $REPORTS/buyers/$DATE/stores/"
echo "== 5/5 location offers (explicit opt-in only): the demo campaigns' audience and merchant report"
"$PY" -m jobs.offers --conf "$CONF" --date "$DATE" 2>&1 | quiet
"$PY" -m mobility.offers_demo --conf "$CONF" --date "$DATE" 2>&1 | quiet
