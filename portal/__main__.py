"""Run the portal: ``python -m portal --conf conf/local.yaml [--set section.key=value ...]``.

Listens on ``portal.host``:``portal.port`` with uvicorn. The secret comes from the
variable ``portal.key_env`` names (or ``<VAR>_FILE``); missing = exit 2, never a default.
Uvicorn's access log is off (it would log client addresses); the portal logs keyed hashes.
"""

from __future__ import annotations

import argparse
import logging
import sys

from contract.errors import ConfigError
from mobility.config import load_config
from mobility.secrets import SecretError, read_secret


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m portal")
    p.add_argument("--conf", required=True, help="config file, e.g. conf/local.yaml")
    p.add_argument("--set", action="append", default=[], metavar="section.key=value")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.conf, args.set)
        if cfg.portal is None:
            raise ConfigError("missing config section 'portal'")
        key = read_secret(cfg.portal.key_env)
    except (ConfigError, SecretError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from portal.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(cfg, key)
    scheme = "https (behind TLS)" if cfg.portal.secure_cookies else "http"
    print(f"privacy portal on http://{cfg.portal.host}:{cfg.portal.port}/ ({scheme} cookies; "
          f"sender {cfg.portal.sender}" + (f", outbox {cfg.portal.outbox}" if cfg.portal.sender == "outbox" else "")
          + ")", flush=True)
    uvicorn.run(app, host=cfg.portal.host, port=cfg.portal.port, access_log=False, log_level="info",
                proxy_headers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
