"""What broke, in one line: map any failure of a job to (exit code, message) in ONE place.

:func:`explain` walks the exception's whole cause chain — Python ``__cause__`` /
``__context__``, PySpark's captured exceptions and, through py4j, the Java
``getCause()`` chain with Spark's error classes — and names the real cause:

=====================================  ====  ================================================
found in the chain                     exit  message names
=====================================  ====  ================================================
ConfigError, SecretError                2    the config key / the variable (as raised)
``No space left on device``             1    that the disk is full, and where it was seen
``USER_RAISED_EXCEPTION`` (a check of   1    the check's own message (e.g. a label outside
ours inside a Spark job, raise_error)        the vocabulary; at most 32 characters of it)
``FAILED_READ_FILE``,                   1    the file and the reader's reason
``CANNOT_READ_FILE_FOOTER``, "is not
a Parquet file", ...
Delta concurrent-modification           1    the table (another writer committed first)
Delta log unreadable (``DELTA_*``,      1    the table and the reason
``_delta_log``)
InputError, ValidationError,            1    as raised (missing partition, schema drift
FileNotFoundError                            naming column and types, failed suites, ...)
anything else                           1    the exception class and where the log is
=====================================  ====  ================================================

Messages are single lines, shortened; they carry paths and Spark's reasons, and no data
beyond what a check of ours puts in its own message (a label, capped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contract.errors import ConfigError, InputError, SecretError, ValidationError

MAX_CHARS = 600
READ_FILE_CLASSES = ("FAILED_READ_FILE", "CANNOT_READ_FILE_FOOTER", "CANNOT_READ_FILE", "FILE_NOT_EXIST",
                     "CORRUPTED_FILE", "_LEGACY_ERROR_TEMP_2254")
CORRUPT_FILE_PHRASES = ("is not a parquet file", "could not read footer", "can not read value at",
                        "expected magic number", "corrupt", "malformed")
NO_SPACE = "no space left on device"
_JAVA_PREFIX = re.compile(r"^((?:[a-z_$][\w$]*\.)+[A-Z][\w$]*): (.*)", re.S)
_URI = r"(?:[a-z][a-z0-9+.-]*:/+)?/[^\s,;'\"\]\)]+"


@dataclass(frozen=True)
class Link:
    """One exception of the chain: its class (Python or Java), message and Spark error class."""

    cls: str
    message: str
    condition: str = ""


def one_line(text: str, limit: int = MAX_CHARS) -> str:
    """Whitespace collapsed, Spark's SQLSTATE suffix and JVM stack trace dropped, shortened."""
    text = str(text).split("\n\nJVM stacktrace:")[0]
    text = re.sub(r"\s*SQLSTATE: \w+\.?", "", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _java_links(jexc, seen: set[int]) -> list[Link]:
    links = []
    try:
        while jexc is not None and len(links) < 30:
            ident = jexc.hashCode()
            if ident in seen:
                break
            seen.add(ident)
            condition = ""
            try:
                if jexc.getClass().getName() and hasattr(jexc, "getCondition"):
                    condition = str(jexc.getCondition() or "")
            except Exception:  # not a SparkThrowable
                condition = ""
            links.append(Link(str(jexc.getClass().getName()), str(jexc.getMessage() or ""), condition))
            jexc = jexc.getCause()
    except Exception:  # the JVM may be gone; keep what we have
        pass
    return links


def chain(exc: BaseException) -> list[Link]:
    """Every exception reachable from ``exc``, outermost first (Python, then its Java causes)."""
    links: list[Link] = []
    seen_py: set[int] = set()
    seen_java: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(links) < 60:
        e = todo.pop(0)
        if id(e) in seen_py:
            continue
        seen_py.add(id(e))
        condition = ""
        get_condition = getattr(e, "getCondition", None) or getattr(e, "getErrorClass", None)
        if callable(get_condition):
            try:
                condition = str(get_condition() or "")
            except Exception:
                condition = ""
        desc = getattr(e, "_desc", None)  # PySpark's CapturedException: the message without the JVM stack
        message = str(desc if desc is not None else e)
        links.append(Link(type(e).__name__, message, condition))
        java = _JAVA_PREFIX.match(message)  # PySpark's UnknownException: "<java class>: <message>", no origin
        if java:
            links.append(Link(java.group(1), java.group(2), condition))
        origin = getattr(e, "_origin", None) or getattr(e, "java_exception", None)
        if origin is not None:
            links.extend(_java_links(origin, seen_java))  # the origin itself too: its Java class names the cause
        for nxt in (getattr(e, "_cause", None), e.__cause__, e.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return links


def local(uri: str) -> str:
    """``file:///x`` and ``file:/x`` shown as ``/x`` (what an operator types); other URIs unchanged."""
    return re.sub(r"^file:/+", "/", uri)


def _file_in(text: str) -> str | None:
    m = re.search(r"reading file (" + _URI + r")", text) or re.search(r"(" + _URI + r"\.parquet)", text)
    return m.group(1).rstrip(".") if m else None


def _delta_table_in(text: str) -> str | None:
    m = re.search(r"(" + _URI + r")/_delta_log", text)
    return m.group(1) if m else None


def _reason(links: list[Link], *, drop: str | None = None) -> str:
    """The innermost non-empty message (the root cause), with ``drop`` (e.g. the file path) removed."""
    for link in reversed(links):
        msg = link.message
        if drop:
            for form in {drop, drop.replace("file:///", "file:/"), drop.replace("file:///", "/")}:
                msg = msg.replace(form, "").strip(" :")
        msg = one_line(msg, 300)
        if msg:
            return msg if len(msg) > 2 else f"{link.cls}"
    return links[-1].cls if links else "unknown"


def explain(exc: BaseException, *, log: str | None = None) -> tuple[int, str]:
    """``(exit code, one-line message)`` for a failed run; ``log`` is where the details are."""
    if isinstance(exc, ConfigError | SecretError):
        return 2, one_line(str(exc))
    links = chain(exc)
    texts = [f"{link.cls}: {link.message}" for link in links]
    blob = "\n".join(texts)
    low = blob.lower()
    where = f" (details in {log})" if log else ""

    if NO_SPACE in low:
        hit = next(t for t in texts if NO_SPACE in t.lower())
        return 1, one_line(f"no space left on device: {one_line(hit, 300)}{where}")

    # A check of ours that stopped a Spark job with raise_error (e.g. a demographic label
    # outside the configured vocabulary in stage 2): its message is the whole story.
    # The link Spark raised it as comes first; an outer "Job aborted ... most recent failure"
    # link quotes it followed by task stack frames, so only its first line is kept.
    raised = next((link for link in links if link.condition == "USER_RAISED_EXCEPTION"), None) or next(
        (link for link in links if "[USER_RAISED_EXCEPTION]" in link.message), None)
    if raised is not None:
        message = raised.message.split("[USER_RAISED_EXCEPTION]", 1)[-1].strip().split("\n", 1)[0]
        return 1, one_line(f"{one_line(message, 300)}{where}")

    read_failure = [link for link in links if link.condition.startswith(READ_FILE_CLASSES)
                    or any(p in link.message.lower() for p in ("is not a parquet file", "could not read footer"))]
    if read_failure:
        path = next((p for p in (_file_in(link.message) for link in read_failure) if p), None)
        if path is None:
            path = next((p for p in (_file_in(t) for t in texts) if p), "an input file")
        inner = links[links.index(read_failure[0]):]
        reason = _reason(inner, drop=path)
        table = _delta_table_in(path)
        if table is not None:
            return 1, one_line(f"Delta table {local(table)} cannot be read: its log file "
                               f"{path.rsplit('/', 1)[-1]} is damaged ({reason})")
        return 1, one_line(f"cannot read input file {local(path)}: {reason}")

    concurrent = next((link for link in links if "concurrent" in link.cls.lower()
                       or link.condition.startswith("DELTA_CONCURRENT")), None)
    if concurrent is not None:
        table = next((t for t in (_delta_table_in(x) for x in texts) if t), None)
        what = f"Delta table {local(table)}" if table else "a Delta table"
        return 1, one_line(f"{what} was changed by another writer during this run "
                           f"({concurrent.cls.rsplit('.', 1)[-1]}: {one_line(concurrent.message, 200)}); "
                           "nothing of this run was committed, re-run the date")

    table = next((t for t in (_delta_table_in(x) for x in texts) if t), None)
    delta = next((link for link in links if link.condition.startswith("DELTA_")), None)
    if table is not None or delta is not None:
        what = f"Delta table {local(table)}" if table else "a Delta table"
        return 1, one_line(f"{what} cannot be read (its _delta_log is damaged or locked): {_reason(links)}{where}")

    if isinstance(exc, InputError | ValidationError | FileNotFoundError):
        return 1, one_line(str(exc))

    return 1, one_line(f"unexpected {type(exc).__name__}: {one_line(str(getattr(exc, '_desc', exc)), 300)}{where}")
