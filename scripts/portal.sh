#!/usr/bin/env bash
# make portal: the self-service privacy portal on 127.0.0.1 with the local outbox.
set -euo pipefail
CONF=${1:-conf/local.yaml}
PY=${PYTHON:-.venv/bin/python}
KEY_ENV=$("$PY" -c 'import sys; from mobility.config import load_config; print(load_config(sys.argv[1]).portal.key_env)' "$CONF")

# Like the demo, this wrapper is the only place that may invent the portal's key, and only
# for a local run: sessions and number hashes of this run become useless when it stops.
if [[ -z "${!KEY_ENV:-}" && -z "$(printenv "${KEY_ENV}_FILE" || true)" ]]; then
  export "$KEY_ENV=$(openssl rand -hex 32)"
  echo "WARNING: $KEY_ENV is not set; make portal generated a throw-away portal key for this run only." >&2
fi
echo "No SMS is sent here: the one-time codes are appended to the outbox file named below."
exec "$PY" -m portal --conf "$CONF" ${PORTAL_ARGS:-} --set portal.host=127.0.0.1
