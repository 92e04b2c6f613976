"""Errors every layer raises; the runner maps them to exit codes (see ``mobility.runner``)."""

from __future__ import annotations


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key (exit 2)."""


class SecretError(RuntimeError):
    """A secret is missing or unusable; the message names the variable only (exit 2)."""


class InputError(RuntimeError):
    """An input table is missing, unreadable or does not have the contracted schema (exit 1)."""


class ValidationError(RuntimeError):
    """Data failed a quality gate or the privacy audit; nothing unsafe was published (exit 1)."""


class ReleaseRefused(ValidationError):
    """A release would be unsafe next to what was released before; nothing was published (exit 1)."""
