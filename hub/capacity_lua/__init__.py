"""The Lua scripts of the seat ledger's Redis gate (hub.capacity), read from this folder.

Packaging: the ``*.lua`` files must be shipped as package data of ``hub``.
"""

from __future__ import annotations

from importlib import resources


def script(name: str) -> str:
    """The source of ``<name>.lua``."""
    return resources.files(__name__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
