"""The data-quality report: each suite's result as JSON, and one HTML page per date.

Kept apart from running the suites (``mobility.quality``) so that what is checked and
how it is shown change independently.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import asdict
from typing import Any

from pyspark.sql import SparkSession

from contract.schemas import RAW_TABLES
from mobility.config import LakeConfig
from mobility.io import list_files, read_text, write_text


def report_dir(lake: LakeConfig, date: dt.date) -> str:
    return f"{lake.reports.rstrip('/')}/quality/{date.isoformat()}"


def report_index(lake: LakeConfig, date: dt.date) -> str:
    """Where the date's HTML report is (what ``make demo`` prints)."""
    return f"{report_dir(lake, date)}/index.html"


def write_report(spark: SparkSession, lake: LakeConfig, date: dt.date, results: list) -> str:
    """Write each table's JSON result, then re-render the date's HTML index from all JSON results."""
    base = report_dir(lake, date)
    for r in results:
        report = {k: v for k, v in asdict(r).items() if k != "digest"}  # the ledger's, not a check
        write_text(spark, f"{base}/{r.table}.json", json.dumps(report, indent=2, default=str))
    all_results = [json.loads(read_text(spark, f"{base}/{name}"))
                   for name in list_files(spark, base, suffix=".json")]
    index = report_index(lake, date)
    write_text(spark, index, render_html(date, all_results))
    return index


def render_html(date: dt.date, results: list[dict[str, Any]]) -> str:
    """A plain, self-contained page: one section per suite, one row per expectation."""
    order = {t: i for i, t in enumerate(RAW_TABLES)}
    results = sorted(results, key=lambda r: (r["stage"] != "input", order.get(r["table"], 99), r["table"]))
    esc = html.escape
    ok = sum(r["success"] for r in results)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Data quality {esc(date.isoformat())}</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:75em}table{border-collapse:collapse;width:100%}",
        "td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top;font-size:.9em}",
        ".pass{color:#176317;font-weight:bold}.fail{color:#b00020;font-weight:bold}code{font-size:.85em}",
        "</style></head><body>",
        f"<h1>Data quality, {esc(date.isoformat())}</h1>",
        f"<p>{ok} of {len(results)} suites passed. Suites are defined in <code>expectations/&lt;table&gt;.py</code>;",
        " the JSON result of each table sits next to this page.</p><ul>",
    ]
    for r in results:
        cls = "pass" if r["success"] else "fail"
        parts.append(f"<li><a href='#{esc(r['table'])}'>{esc(r['table'])}</a> ({esc(r['stage'])}) "
                     f"<span class='{cls}'>{'passed' if r['success'] else 'FAILED'}</span></li>")
    parts.append("</ul>")
    for r in results:
        cls = "pass" if r["success"] else "fail"
        parts.append(f"<h2 id='{esc(r['table'])}'>{esc(r['table'])} <span class='{cls}'>"
                     f"{'passed' if r['success'] else 'FAILED'}</span></h2>")
        parts.append(f"<p>suite <code>{esc(r['table'])}</code>, {esc(r['stage'])}, validated {esc(r['validated_at'])}"
                     f" in {r['seconds']:.1f} s</p>")
        parts.append("<table><tr><th>expectation</th><th>check</th><th>on</th><th>parameters</th>"
                     "<th>success</th><th>observed value</th></tr>")
        for e in r["expectations"]:
            ecls = "pass" if e["success"] else "fail"
            params = ", ".join(f"{k}={v}" for k, v in e["kwargs"].items())
            parts.append(
                f"<tr><td><code>{esc(e['expectation'])}</code></td><td>{esc(str(e['check']))}</td>"
                f"<td>{esc(e['on'])}</td><td><code>{esc(params)}</code></td>"
                f"<td class='{ecls}'>{'yes' if e['success'] else 'NO'}</td><td>{esc(str(e['observed']))}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
