"""Exceptions that name a user's mistake; the CLI prints them as one line, without a traceback."""

from __future__ import annotations

__all__ = ["HyperdmlError", "CheckpointError", "DatasetError", "ConfigError"]


class HyperdmlError(Exception):
    """Base of the errors whose message alone tells the user what to fix."""


class CheckpointError(HyperdmlError, ValueError):
    """A file that is not a readable hyperdml checkpoint, or one that does not fit the model."""


class DatasetError(HyperdmlError, ValueError):
    """A data folder that is missing or not in the expected layout (the message names the file)."""


class ConfigError(HyperdmlError, ValueError):
    """Command-line or configuration values that do not fit together."""
