"""Settings read from the environment, checked: a bad value stops the process with the variable's name, an
excerpt of the value and the range allowed. Shared by every image (the named build context `lib`)."""

from __future__ import annotations

import os


def clip(text: str, limit: int = 40) -> str:
    """A bounded excerpt of untrusted text for an error message: input is never echoed whole."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={clip(raw)!r} is not a whole number (allowed: {low}..{high})") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is out of range (allowed: {low}..{high})")
    return value


def env_seconds(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={clip(raw)!r} is not a number of seconds (allowed: {low:g}..{high:g})") from None
    if not low <= value <= high:  # also refuses NaN
        raise ValueError(f"{name}={clip(raw)!r} is out of range (allowed: {low:g}..{high:g})")
    return value
