"""Plugin hook specifications (pluggy). Every hook takes a ``register`` callback or the CLI."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("phototag")
hookimpl = pluggy.HookimplMarker("phototag")


@hookspec
def register_backends(register):  # type: ignore[no-untyped-def]
    """Register inference backends: ``register(name, BackendClass)``."""


@hookspec
def register_writers(register):  # type: ignore[no-untyped-def]
    """Register metadata writers: ``register(name, factory)``."""


@hookspec
def register_engines(register):  # type: ignore[no-untyped-def]
    """Register indexing engines: ``register(name, EngineClass)`` (``phototag.engines``)."""


@hookspec
def register_commands(cli):  # type: ignore[no-untyped-def]
    """Add click commands to the ``phototag`` group: ``cli.command()(...)``."""
