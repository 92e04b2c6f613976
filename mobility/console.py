"""What a job run shows on the console, and where the rest goes: the run's log file.

* :func:`run_log`: ``<lake.reports>/runs/<date>/<job>.log`` beside the run summary, or
  ``logs/runs/<date>/<job>.log`` (relative to the working directory) when the reports
  live on a remote file system (``s3a://``, ``hdfs://``, ...).
* :func:`quiet`: for the duration of a run, Python-side chatter — warnings (pandas,
  pyarrow, PySpark, Great Expectations FutureWarnings and the like), py4j's logger,
  PySpark's query-context error logger, tqdm progress bars — goes to that log file
  instead of the console. Errors are not hidden: the job still ends with one
  ``error:`` line and the full traceback is in the log (:func:`log_exception`).
  Spark's own log (log4j2) is routed there by ``mobility.spark.build_session``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

# Loggers whose records are noise on the console of a run (their content stays in the log file).
NOISY_LOGGERS = ("py4j", "py4j.clientserver", "py4j.java_gateway", "great_expectations", "DataFrameQueryContextLogger",
                 "SQLQueryContextLogger", "py.warnings")
LOCAL_LOGS = Path("logs")


def run_log(reports: str, date: dt.date, job: str) -> Path:
    """Where this run's log goes (a local path: log4j and Python write it directly)."""
    parsed = urlparse(reports)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # a plain or file: path (or a drive letter)
        base = Path(parsed.path if parsed.scheme == "file" else reports)
    else:
        base = LOCAL_LOGS
    return (base / "runs" / date.isoformat() / f"{job}.log").absolute()


@contextmanager
def quiet(log: Path, *, verbose: bool = False) -> Iterator[None]:
    """Start the run's log file; unless ``verbose``, route Python-side noise into it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as f:  # one file per run: a re-run replaces it, as its summary
        f.write(f"# run started {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}\n")
    if verbose:
        yield
        return
    from pyspark.logger import PySparkLogger

    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in NOISY_LOGGERS:
        # PySpark's query-context loggers must be PySparkLoggers (they log with extra keywords).
        logger = PySparkLogger.getLogger(name) if name.endswith("QueryContextLogger") else logging.getLogger(name)
        saved.append((logger, logger.propagate, list(logger.handlers)))
        logger.handlers = [handler]
        logger.propagate = False
    old_tqdm = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    with warnings.catch_warnings():
        logging.captureWarnings(True)
        warnings.simplefilter("default")  # every warning once per place, into the log file
        try:
            yield
        finally:
            logging.captureWarnings(False)
            for logger, propagate, handlers in saved:
                logger.handlers, logger.propagate = handlers, propagate
            handler.close()
            if old_tqdm is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = old_tqdm


def log_exception(log: Path, exc: BaseException) -> None:
    """Append the Python traceback of a failed run to its log file (never to the console)."""
    try:
        with log.open("a", encoding="utf-8") as f:
            f.write(f"# run failed {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}\n")
            f.write("".join(traceback.format_exception(exc)))
    except OSError:
        pass
