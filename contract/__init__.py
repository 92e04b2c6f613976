"""The contract's vocabulary, at the bottom of the import graph.

``contract`` imports nothing from the project: table schemas, the MSISDN rule, event
types, gender codes and labels, age-band labels, quarantine reasons, dispositions,
the H3 index layout and the errors every layer raises. ``transforms/`` and
``expectations/`` both build on it, so a rule is written once.
"""
