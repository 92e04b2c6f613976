#!/usr/bin/env bash
# Build what spark-submit needs to run the jobs on a cluster (called by `make package`):
#
#   dist/mobility_insights.zip  the project's code (contract, jobs, transforms, expectations, mobility, reporting)
#                               for --py-files
#   dist/env.tar.gz             the Python dependencies (h3, shapely, Great Expectations, ...)
#                               as a venv-pack archive of .venv, for --archives dist/env.tar.gz#env
#
# Delta's jar is not packaged: it comes through --packages (see mobility/spark.py).
#
# PySpark itself is left out of env.tar.gz: the cluster's Spark puts its own pyspark.zip
# and py4j on the executors' PYTHONPATH, and a second copy could disagree with it.
# venv-pack does not copy the interpreter: env/bin/python links to the Python 3.11 this
# venv was made from. Set PYTHON_PREFIX (e.g. /usr) when the cluster nodes have
# Python 3.11 elsewhere.
#
# Environment: VENV (default .venv), DIST (default dist), PYTHON_PREFIX (optional),
# SKIP_ENV=1 builds the code zip only (quick; enough when executors already have the
# dependencies, e.g. the loopback cluster of the integration test).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
DIST=${DIST:-dist}
PYTHON="$VENV/bin/python"
PACKAGES=(contract jobs transforms expectations mobility reporting)

[[ -x "$PYTHON" ]] || { echo "error: $PYTHON not found; run 'make setup' first" >&2; exit 1; }
mkdir -p "$DIST"

# The code: every package with its __init__.py, no bytecode, stable order and timestamps
# so the same sources give the same zip.
"$PYTHON" - "$DIST/mobility_insights.zip" "${PACKAGES[@]}" <<'EOF'
import sys
import zipfile
from pathlib import Path

out, packages = Path(sys.argv[1]), sys.argv[2:]
tmp = out.with_suffix(".zip.tmp")
with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
    for pkg in packages:
        if not (Path(pkg) / "__init__.py").is_file():
            sys.exit(f"error: {pkg}/__init__.py is missing: {pkg} would not import from the zip")
        for path in sorted(Path(pkg).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            info = zipfile.ZipInfo(path.as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
tmp.replace(out)
with zipfile.ZipFile(out) as zf:
    print(f"{out}: {len(zf.namelist())} modules from {', '.join(packages)}")
EOF

if [[ "${SKIP_ENV:-0}" == 1 ]]; then
  exit 0
fi

SITE=lib/python3.11/site-packages
args=(--prefix "$VENV" --output "$DIST/env.tar.gz" --force --quiet
      --exclude "$SITE/pyspark/*" --exclude "$SITE/pyspark-*.dist-info/*"
      --exclude "bin/ruff" --exclude "$SITE/ruff/*" --exclude "$SITE/ruff-*.dist-info/*")
# pyspark's launcher scripts landed in the venv's bin/; the cluster has its own.
for script in spark-* pyspark* beeline* sparkR* run-example* find-spark-home* load-spark-env* docker-image-tool.sh; do
  args+=(--exclude "bin/$script")
done
if [[ -n "${PYTHON_PREFIX:-}" ]]; then
  args+=(--python-prefix "$PYTHON_PREFIX")
fi
"$VENV/bin/venv-pack" "${args[@]}"
echo "$DIST/env.tar.gz: $(du -h "$DIST/env.tar.gz" | cut -f1) (venv-pack of $VENV, without pyspark)"
