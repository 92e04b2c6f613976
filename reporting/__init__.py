"""What buyers see: the map report and the store report, built from released tables only.

Pure logic, no Spark and no I/O beyond what a caller hands in: which H3 cells cover a
store (:mod:`reporting.cover`), the store report's tables, texts and charts
(:mod:`reporting.stores`), the map page and the peak-hour PNG (:mod:`reporting.maps`).
The jobs ``jobs.report`` and ``jobs.store_report`` read the release through
``mobility.release.read_release`` and write what these functions return.

(The package is not called ``reports``: that name is the git-ignored output folder.)
"""
