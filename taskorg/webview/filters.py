"""Jinja filters that turn API values into short, readable text."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import yaml
from flask import Flask

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def ago(seconds: Any) -> str:
    """0.15 -> '0.2 s ago', 125 -> '2 min ago'; None -> 'never'."""
    if seconds is None:
        return "never"
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return str(seconds)
    if value < 10:
        return f"{value:.1f} s ago"
    if value < 120:
        return f"{value:.0f} s ago"
    if value < 7200:
        return f"{value / 60:.0f} min ago"
    return f"{value / 3600:.0f} h ago"


def size(value: Any) -> str:
    """Bytes in binary units: 1073741824 -> '1.0 GiB'."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return "–"
    for unit in _UNITS:
        if abs(amount) < 1024 or unit == _UNITS[-1]:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def _as_datetime(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def when(value: Any) -> str:
    """A timestamp (epoch seconds or ISO text) as UTC: time only when it is today."""
    moment = _as_datetime(value)
    if moment is None:
        return "–" if value in (None, "") else str(value)
    today = datetime.fromtimestamp(time.time(), timezone.utc).date()
    return moment.strftime("%H:%M:%S" if moment.date() == today else "%Y-%m-%d %H:%M")


def iso(value: Any) -> str:
    moment = _as_datetime(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def _pruned(value: Any) -> Any:
    """The value without unset fields (None, empty lists and mappings), recursively."""
    if isinstance(value, dict):
        kept = {key: _pruned(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(item) for item in value]
    return value


def as_yaml(value: Any) -> str:
    """A spec (dict) as YAML, fields in their order, without the unset ones.

    The master stores the normalised spec, every default spelled out; the
    fields nobody set would bury the ones that matter.
    """
    if isinstance(value, str):
        return value
    return yaml.safe_dump(_pruned(value), sort_keys=False, default_flow_style=None, allow_unicode=True,
                          width=72).rstrip()


def percent(value: Any) -> str:
    try:
        return f"{float(value):.0f}%"
    except (TypeError, ValueError):
        return "–"


# A state is never told by colour alone: each has a mark too.
SYMBOLS = {"succeeded": "✓", "failed": "✗", "running": "▶", "starting": "◔", "pending": "…", "waiting": "…",
           "cancelled": "⊘", "restarting": "↻", "lost": "?"}


def symbol(state: Any) -> str:
    return SYMBOLS.get(str(state), "•")


def clip(value: Any, length: int) -> str:
    """Text cut to `length` characters with an ellipsis (SVG text does not wrap)."""
    text = str(value)
    return text if len(text) <= length else text[:max(length - 1, 1)] + "…"


def seconds(value: Any) -> str:
    """An offset on a timeline: '+0.75 s'."""
    amount = float(value)
    return f"+{amount:.2f} s" if amount < 10 else f"+{amount:.1f} s"


def register(app: Flask) -> None:
    from taskorg.webview import timeline, topology
    from taskorg.webview.views import task_nodes

    for name, func in {"ago": ago, "size": size, "when": when, "iso": iso, "as_yaml": as_yaml,
                       "percent": percent, "symbol": symbol, "clip": clip, "seconds": seconds}.items():
        app.jinja_env.filters[name] = func
    app.jinja_env.globals.update(task_nodes=task_nodes, cluster_drawings=topology.drawings, draw_timeline=timeline.draw)
