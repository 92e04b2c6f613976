"""Column rules of the contract, as Spark expressions (built-ins only, no session, no I/O).

Used both to produce values (``transforms/``) and to check them (``expectations/``).
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from contract.vocabulary import BLANKS, HEX64, MSISDN_DIGITS


def count_if(cond: Column) -> Column:
    """Rows where ``cond`` is true (null counts as false), as a long; 0 for no rows.

    Spark's own ``count_if``: one JVM call to build, where ``coalesce(sum(when(...)))``
    took six (a profile builds some seventy of these per run).
    """
    return F.count_if(cond)


def content_digest(columns: list[str]) -> Column:
    """Aggregate: an order-independent digest of a frame's rows over ``columns``, as a decimal string.

    The sum of the first 60 bits of each row's SHA-256 over its JSON (columns in name
    order): equal frames give equal digests whatever their order or file layout. The
    release ledger records it in hex (:func:`digest_hex`, ``mobility.ledger.fingerprint``); release profiles
    compute it in their own aggregation (``expectations.common.digest_check``).
    """
    row_hash = F.conv(F.substring(F.sha2(F.to_json(F.struct(*sorted(columns))), 256), 1, 15), 16, 10)
    return F.coalesce(F.sum(row_hash.cast("decimal(38,0)")), F.lit(0).cast("decimal(38,0)")).cast("string")


def digest_hex(value: str) -> str:
    """A :func:`content_digest` value (a decimal string) in the release ledger's form: lowercase hex."""
    return format(int(value), "x")


def is_hex64(col: str) -> Column:
    """64 lowercase hex characters (an HMAC-SHA256 pseudonym); null is not."""
    return F.coalesce(F.col(col).rlike(HEX64), F.lit(False))


def h3_index(cell: Column) -> Column:
    """The 64-bit H3 index of a cell given as hex."""
    return F.conv(cell, 16, 10).cast("long")


def h3_resolution_of(cell: Column) -> Column:
    """Resolution of an H3 cell given as hex (bits 52-55 of the index)."""
    return F.shiftright(h3_index(cell), 52).bitwiseAND(F.lit(15))


def is_h3_at(cell: Column, resolution: int) -> Column:
    """A valid H3 cell index (15 lowercase hex, cell mode) at exactly ``resolution``.

    Mode 1 (leading ``8``), resolution nibble, base cell < 122, every used digit 0-6 and
    every unused digit 7 (the bit layout of the H3 index: digit ``d`` in bits
    ``3 (15 - d)`` to ``3 (15 - d) + 2``). The digits are checked with two masks rather
    than one expression per digit (which cost some hundred JVM calls to build, 0.28 s a
    suite): the unused digits are all ones; a used digit is 7 exactly when its three
    bits are all set, i.e. when the low bit of ``y & y >> 1 & y >> 2`` at its place is.
    """
    x = h3_index(cell)
    unused_bits = 3 * (15 - resolution)
    unused = (1 << unused_bits) - 1
    low_bit_of_used = sum(1 << (3 * i) for i in range(resolution))
    used = F.shiftright(x, unused_bits)
    sevens = used.bitwiseAND(F.shiftright(used, 1)).bitwiseAND(F.shiftright(used, 2))
    ok = (cell.rlike(r"^8[0-9a-f]{14}$")
          & (h3_resolution_of(cell) == F.lit(resolution))
          & (F.shiftright(x, 45).bitwiseAND(F.lit(127)) < F.lit(122))
          & (x.bitwiseAND(F.lit(unused)) == F.lit(unused))
          & (sevens.bitwiseAND(F.lit(low_bit_of_used)) == F.lit(0)))
    return F.coalesce(ok, F.lit(False))


def h3_parent(cell: Column, *, resolution: int) -> Column:
    """Parent of an H3 cell (hex) at ``resolution``; null when the cell is coarser.

    The parent sets the resolution nibble and marks the digits finer than it unused (7).
    """
    res_mask = 0xF << 52
    unused = (1 << (3 * (15 - resolution))) - 1
    parent = h3_index(cell).bitwiseAND(F.lit(~res_mask)).bitwiseOR(F.lit((resolution << 52) | unused))
    return F.when(h3_resolution_of(cell) >= F.lit(resolution), F.lower(F.conv(parent.cast("string"), 10, 16)))


def window_start(ts: Column, *, minutes: int) -> Column:
    """Start of the fixed ``minutes``-long window (aligned to midnight UTC) holding ``ts``."""
    seconds = minutes * 60
    return F.timestamp_seconds(F.floor(F.unix_timestamp(ts) / F.lit(seconds)) * F.lit(seconds))


def is_window_aligned(col: str, minutes: int) -> Column:
    """The timestamp is the start of a ``minutes`` window aligned to midnight UTC."""
    return F.coalesce((F.unix_timestamp(F.col(col)) % F.lit(minutes * 60)) == F.lit(0), F.lit(False))


def canonical_msisdn(msisdn: Column) -> Column:
    """The one canonical form of an MSISDN: E.164 digits, no ``+``, no blanks.

    Blanks anywhere (:data:`contract.vocabulary.BLANKS`: tabs, line breaks, spaces, the
    Unicode spaces), then one leading ``+`` or international ``00`` prefix, are removed;
    what is left must be 8-15 ASCII digits, the first not ``0`` (the rule of
    :data:`contract.vocabulary.MSISDN_PATTERN`), else the result is null (cannot be
    normalized: e.g. letters, hyphens, a national ``0170...`` number, too short).
    Applied to events, subscribers and preferences *before any join*, so that
    ``+49 170 1234567``, ``0049170...`` and ``49170...`` are one person. The portal
    (``portal/msisdn.py``) applies the same rule to what people type.

    Character mapping and lengths, no regular expression: it runs on every raw event
    twice (input gate, stage 1), and ``translate`` costs about a third less than the two
    ``regexp_replace`` and the ``rlike`` it replaced (4 M events). It also cannot repeat
    their flaw: ``$`` in a Java pattern matches before a final line terminator, so
    ``4917012345678\u2028`` passed the pattern and came out as a number no other
    spelling of the same person joined.
    """
    stripped = F.translate(msisdn, BLANKS, "")
    after = F.length(stripped)
    digits = (F.when(stripped.startswith("+"), stripped.substr(F.lit(2), after))
              .when(stripped.startswith("00"), stripped.substr(F.lit(3), after))
              .otherwise(stripped))
    lo, hi = MSISDN_DIGITS
    wellformed = (F.length(digits).between(lo, hi) & (F.substring(digits, 1, 1) != F.lit("0"))
                  & (F.translate(digits, "0123456789", "") == F.lit("")))
    return F.when(wellformed, digits)
