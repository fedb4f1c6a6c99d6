"""The optional TensorFlow backend and the ``phototag train`` command.

This module is imported at every CLI start, so it stays light: TensorFlow is never
imported here. The backend is registered only when TensorFlow is installed (otherwise
``--backend tensorflow`` gets the core's "install the extra" error); the commands are
always registered, and ``train`` says how to install TensorFlow when it is missing.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from phototag.hookspecs import hookimpl


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("tensorflow") is None:
        return
    from phototag_tensorflow.backend import TensorflowBackend

    register("tensorflow", TensorflowBackend)


@hookimpl
def register_commands(cli: Any) -> None:
    from phototag_tensorflow.commands import train

    cli.add_command(train)
