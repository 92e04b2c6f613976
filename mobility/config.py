"""Typed, validated configuration loaded from ``conf/<env>.yaml``.

Every section maps to a frozen dataclass. Unknown keys, missing keys and values of
the wrong type are errors that name the offending ``section.key``: a typo in an
operator's deployment must fail the run at start, never silently fall back to a
default. Secrets are never part of the configuration; the config only names the
environment variables that hold them (see :mod:`mobility.secrets`).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from contract.errors import ConfigError
from contract.vocabulary import MAX_H3_RESOLUTION, MIN_K, MIN_WINDOW_MINUTES


@dataclass(frozen=True)
class LakeConfig:
    """Where the zones of the lake live (paths or URIs).

    ``network`` (optional): the network domain's own output zone, for the one table that
    must hold subscriber numbers (``offer_audience``, for delivery); ``<raw>/_network``
    when not set. Never the restricted (curated) or release (insights) zone.
    """

    raw: str
    curated: str
    insights: str
    reports: str
    network: str | None = None


@dataclass(frozen=True)
class SecretsConfig:
    """Names of the environment variables holding the two secrets (never the secrets)."""

    network_key_env: str
    daily_key_env: str


@dataclass(frozen=True)
class GeneralizationConfig:
    """How far location, time and age are coarsened before anything is released."""

    h3_resolution: int
    od_h3_resolution: int
    window_minutes: int
    age_band_edges: tuple[int, ...]


@dataclass(frozen=True)
class PrivacyConfig:
    """Who is excluded and how many people a released row must stand for."""

    k_min: int
    min_age: int
    exclude_business: bool
    # How stage 3 releases: k_anonymity (suppression, remainder-guard-v1) or
    # differential_privacy (the ``dp`` section). Optional: k_anonymity when absent.
    mode: str = "k_anonymity"


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds for the input data-quality gate."""

    max_quarantine_share: float
    min_known_cell_share: float
    min_wellformed_msisdn_share: float


@dataclass(frozen=True)
class InsightsConfig:
    """Parameters of the insight products beyond footfall."""

    market_share: float
    stay_min_minutes: int
    region_factors: str | None = None


@dataclass(frozen=True)
class SparkConfig:
    """Spark settings; ``master`` is ignored when spark-submit already chose one."""

    master: str | None = None
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PortalConfig:
    """The self-service privacy portal and its export (``portal/``, ``jobs.export_preferences``).

    ``key_env`` names the variable holding the portal's secret (sessions, CSRF, number
    hashes); ``sender`` is ``outbox`` (JSON lines at ``outbox``) or ``module:Class``;
    ``customer_check`` is ``subscribers`` (``<lake.raw>/subscribers``), ``any`` or
    ``module:Class``. The database URL never holds a password (libpq's PGPASSWORD or
    .pgpass do).
    """

    database_url: str
    key_env: str
    sender: str
    outbox: str
    customer_check: str
    secure_cookies: bool
    code_ttl_seconds: int
    session_ttl_seconds: int
    max_attempts_per_code: int
    max_codes_per_number_per_hour: int
    max_codes_per_client_per_hour: int
    host: str
    port: int


@dataclass(frozen=True)
class RetentionConfig:
    """How long the restricted zone keeps data (``jobs.retention``), relative to the run's date.

    ``<table>_days``: a date's rows are deleted, and purged physically, once the date is
    more than that many days before the run's date. ``superseded_versions_hours``: how
    long files no longer in a table's current version (replaced, deleted) stay readable
    by time travel, for every curated *and* insights table. ``log_retention_days``: how
    long Delta log entries are kept (``delta.logRetentionDuration``).
    """

    pseudonymized_events_days: int
    anonymized_events_days: int
    anonymized_trips_days: int
    quarantine_days: int
    opt_outs_days: int
    superseded_versions_hours: int
    log_retention_days: int

    def days(self) -> dict[str, int]:
        """Retention in days per curated table that expires by date."""
        return {f.name.removesuffix("_days"): getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name.endswith("_days") and f.name != "log_retention_days"}

    @classmethod
    def defaults(cls) -> RetentionConfig:
        """What a deployment without a ``retention`` section gets (the values of ``conf/local.yaml``)."""
        return cls(pseudonymized_events_days=7, anonymized_events_days=30, anonymized_trips_days=30,
                   quarantine_days=14, opt_outs_days=30, superseded_versions_hours=24, log_retention_days=7)


@dataclass(frozen=True)
class DpConfig:
    """The differential-privacy release mode (``privacy.mode: differential_privacy``, ``transforms/dp.py``).

    ``epsilon``/``delta``: what one release of a date spends (all three tables);
    ``*_share``: how ε is split between the tables (sum 1; δ goes to od_flows' partition
    selection); ``*_max_groups``: the groups one person may add to per table and date;
    ``budget_epsilon``/``budget_delta``: what all releases of one date may spend together.
    """

    epsilon: float
    delta: float
    footfall_share: float
    presence_share: float
    od_flows_share: float
    footfall_max_groups: int
    presence_max_groups: int
    od_flows_max_groups: int
    budget_epsilon: float
    budget_delta: float

    @classmethod
    def defaults(cls) -> DpConfig:
        """What a deployment without a ``dp`` section gets (the values of ``conf/local.yaml``)."""
        return cls(epsilon=1.0, delta=1e-6, footfall_share=0.4, presence_share=0.4, od_flows_share=0.2,
                   footfall_max_groups=12, presence_max_groups=12, od_flows_max_groups=4,
                   budget_epsilon=2.0, budget_delta=1e-5)


@dataclass(frozen=True)
class OffersConfig:
    """Location offers (``jobs.offers``): how long the audience is kept, how large a geofence may be."""

    audience_retention_days: int
    max_radius_m: float

    @classmethod
    def defaults(cls) -> OffersConfig:
        """What a deployment without an ``offers`` section gets (the values of ``conf/local.yaml``)."""
        return cls(audience_retention_days=7, max_radius_m=50_000.0)


@dataclass(frozen=True)
class Config:
    """The whole validated configuration of one environment."""

    lake: LakeConfig
    secrets: SecretsConfig
    generalization: GeneralizationConfig
    privacy: PrivacyConfig
    quality: QualityConfig
    insights: InsightsConfig
    spark: SparkConfig
    # Optional: only the portal and jobs.export_preferences need it (they fail without it).
    portal: PortalConfig | None = None
    # Optional as a whole (older deployments have none: they get RetentionConfig.defaults());
    # a section that is present must name every key.
    retention: RetentionConfig = field(default_factory=RetentionConfig.defaults)
    # Optional as a whole, like retention: OffersConfig.defaults() when absent.
    offers: OffersConfig = field(default_factory=OffersConfig.defaults)
    # Optional as a whole: DpConfig.defaults() when absent (used only in differential_privacy mode).
    dp: DpConfig = field(default_factory=DpConfig.defaults)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a dataclass field annotation, converting lists to tuples."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"config key '{key}' must be a non-empty string, got {value!r}")
        return value
    raise ConfigError(f"config key '{key}' has an unsupported type")  # pragma: no cover


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}.{unknown[0]}'")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}"
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if name not in data:
            if required:
                raise ConfigError(f"missing config key '{key}'")
            continue
        kwargs[name] = _coerce(data[name], hints[name], key)
    return cls(**kwargs)


def _validate(cfg: Config) -> None:
    """Cross-field rules that a type check cannot express."""
    g, p, q, i = cfg.generalization, cfg.privacy, cfg.quality, cfg.insights
    # Policy floors: a release finer than these is not ours to make, whatever the command line says.
    for key, res in (("h3_resolution", g.h3_resolution), ("od_h3_resolution", g.od_h3_resolution)):
        if not 0 <= res <= MAX_H3_RESOLUTION:
            raise ConfigError(f"config key 'generalization.{key}' must be 0..{MAX_H3_RESOLUTION} (policy floor: "
                              f"no finer H3 cells), got {res}")
    if g.window_minutes < MIN_WINDOW_MINUTES:
        raise ConfigError(f"config key 'generalization.window_minutes' must be at least {MIN_WINDOW_MINUTES} "
                          f"(policy floor), got {g.window_minutes}")
    if (24 * 60) % g.window_minutes:
        raise ConfigError(
            "config key 'generalization.window_minutes' must divide a day (e.g. 15, 30, 60), "
            f"got {g.window_minutes}"
        )
    edges = g.age_band_edges
    if not edges or list(edges) != sorted(set(edges)):
        raise ConfigError("config key 'generalization.age_band_edges' must be strictly increasing")
    if p.k_min < MIN_K:
        raise ConfigError(f"config key 'privacy.k_min' must be at least {MIN_K} (policy floor), got {p.k_min}")
    if p.min_age < edges[0]:
        raise ConfigError(
            f"config key 'privacy.min_age' ({p.min_age}) is below the first age band edge "
            f"({edges[0]}): people that young would have no band"
        )
    for key, share in (
        ("max_quarantine_share", q.max_quarantine_share),
        ("min_known_cell_share", q.min_known_cell_share),
        ("min_wellformed_msisdn_share", q.min_wellformed_msisdn_share),
    ):
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"config key 'quality.{key}' must be between 0 and 1, got {share}")
    if not 0.0 < i.market_share <= 1.0:
        raise ConfigError(f"config key 'insights.market_share' must be in (0, 1], got {i.market_share}")
    if i.stay_min_minutes <= 0:
        raise ConfigError("config key 'insights.stay_min_minutes' must be positive")
    if cfg.portal is not None:
        _validate_portal(cfg.portal)


def _validate_portal(pc: PortalConfig) -> None:
    if re.search(r"://[^/@]*:[^/@]*@", pc.database_url):
        raise ConfigError("config key 'portal.database_url' must not hold a password (use PGPASSWORD or .pgpass)")
    for key in ("code_ttl_seconds", "session_ttl_seconds", "max_attempts_per_code",
                "max_codes_per_number_per_hour", "max_codes_per_client_per_hour"):
        if getattr(pc, key) < 1:
            raise ConfigError(f"config key 'portal.{key}' must be at least 1, got {getattr(pc, key)}")
    if not 1 <= pc.port <= 65535:
        raise ConfigError(f"config key 'portal.port' must be 1..65535, got {pc.port}")


RELEASE_MODES = ("k_anonymity", "differential_privacy")


def _validate_dp(cfg: Config) -> None:
    if cfg.privacy.mode not in RELEASE_MODES:
        raise ConfigError(f"config key 'privacy.mode' must be one of {', '.join(RELEASE_MODES)}, "
                          f"got {cfg.privacy.mode!r}")
    d = cfg.dp
    if not 0 < d.epsilon <= 10:
        raise ConfigError(f"config key 'dp.epsilon' must be in (0, 10], got {d.epsilon}")
    if not 0 < d.delta < 1e-3:
        raise ConfigError(f"config key 'dp.delta' must be in (0, 0.001), got {d.delta}")
    shares = {"footfall_share": d.footfall_share, "presence_share": d.presence_share,
              "od_flows_share": d.od_flows_share}
    for key, share in shares.items():
        if not 0 < share <= 1:
            raise ConfigError(f"config key 'dp.{key}' must be in (0, 1], got {share}")
    if abs(sum(shares.values()) - 1.0) > 1e-9:
        raise ConfigError("config keys 'dp.footfall_share', 'dp.presence_share', 'dp.od_flows_share' must add up "
                          f"to 1, got {sum(shares.values())}")
    for key in ("footfall_max_groups", "presence_max_groups", "od_flows_max_groups"):
        if not 1 <= getattr(d, key) <= 1000:
            raise ConfigError(f"config key 'dp.{key}' must be 1..1000, got {getattr(d, key)}")
    if d.budget_epsilon < d.epsilon:
        raise ConfigError(f"config key 'dp.budget_epsilon' ({d.budget_epsilon}) is below 'dp.epsilon' "
                          f"({d.epsilon}): not even one release would fit")
    if d.budget_delta < d.delta:
        raise ConfigError(f"config key 'dp.budget_delta' ({d.budget_delta}) is below 'dp.delta' ({d.delta})")


def _validate_retention(cfg: Config) -> None:
    r = cfg.retention
    for name, days in r.days().items():
        if days < 1:
            raise ConfigError(f"config key 'retention.{name}_days' must be at least 1 (the run's own date is kept), "
                              f"got {days}")
    if r.superseded_versions_hours < 0:
        raise ConfigError("config key 'retention.superseded_versions_hours' must not be negative")
    if r.log_retention_days < 1:
        raise ConfigError("config key 'retention.log_retention_days' must be at least 1")


def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any]]:
    """Parse ``section.key=value`` strings; values are read as YAML scalars or lists."""
    parsed = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form section.key=value")
        dotted, raw = item.split("=", 1)
        path = dotted.strip().split(".")
        if len(path) < 2 or not all(path):
            raise ConfigError(f"override '{item}' must name section.key")
        parsed.append((path, yaml.safe_load(raw) if raw.strip() else ""))
    return parsed


def _apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            # Only the free-form spark.conf mapping may gain new keys; everything else
            # is validated against the dataclasses afterwards anyway.
            child = {}
            node[part] = child
        if not isinstance(child, dict):
            raise ConfigError(f"override '{'.'.join(path)}': '{'.'.join(path[: i + 1])}' is not a section")
        node = child
    node[path[-1]] = value


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Load, override and validate a config file.

    Args:
        path: the YAML file, e.g. ``conf/local.yaml``.
        overrides: ``section.key=value`` strings from ``--set``; ``spark.conf.<name>``
            sets a Spark property (names may contain dots).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{p}' must hold a mapping of sections")
    for dotted, value in parse_overrides(overrides or []):
        if dotted[:2] == ["spark", "conf"] and len(dotted) > 2:
            data.setdefault("spark", {}).setdefault("conf", {})[".".join(dotted[2:])] = value
        else:
            _apply_override(data, dotted, value)
    sections: dict[str, Any] = {}
    hints = typing.get_type_hints(Config)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(f"unknown config section '{unknown[0]}'")
    optional = {f.name for f in dataclasses.fields(Config)
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    for name, cls in hints.items():
        if name not in data and name in optional:
            continue
        if name not in data:
            raise ConfigError(f"missing config section '{name}'")
        if typing.get_args(cls):  # X | None
            cls = next(a for a in typing.get_args(cls) if a is not type(None))
        sections[name] = _build(cls, data[name], name)
    cfg = Config(**sections)
    _validate(cfg)
    _validate_retention(cfg)
    _validate_dp(cfg)
    _validate_offers(cfg.offers)
    return cfg


def _validate_offers(o: OffersConfig) -> None:
    """The ``offers`` section's rules (kept apart from :func:`_validate`)."""
    if o.audience_retention_days < 1:
        raise ConfigError(f"config key 'offers.audience_retention_days' must be at least 1, got "
                          f"{o.audience_retention_days}")
    if not 0 < o.max_radius_m <= 50_000:
        raise ConfigError(f"config key 'offers.max_radius_m' must be in (0, 50000] metres, got {o.max_radius_m}")
