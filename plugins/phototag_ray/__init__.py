"""The ray engine: decode + embed + detect on a Ray cluster (``pip install 'phototag[ray]'``).

Registered like any third-party engine; this module stays light (Ray is imported only
when an index run asks for ``--engine ray``).
"""

from __future__ import annotations

from phototag.hookspecs import hookimpl


@hookimpl
def register_engines(register):  # type: ignore[no-untyped-def]
    from phototag_ray.engine import RayEngine

    register("ray", RayEngine)
