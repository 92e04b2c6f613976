"""The self-service privacy portal: subscribers opt out of analytics or into location offers.

Consent changes are appended to a database (``portal.store``) and exported, exactly once,
to ``<lake.raw>/privacy_preferences`` by ``jobs.export_preferences`` (``portal.export``),
where the pipeline's next run honours them.
"""
