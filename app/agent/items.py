"""The SDK's items, read alike whatever their form.

The Agents SDK hands items sometimes as dicts (input items, as the Responses API takes them) and
sometimes as pydantic objects (items it made from a model's output); both readers of items, the
runner and the offline model, read a field the same way.
"""

from __future__ import annotations

from typing import Any


def field_of(item: Any, name: str) -> Any:
    """The item's field `name`, or None when it has none."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)
