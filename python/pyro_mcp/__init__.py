"""pyro: isolated, persistent Linux workspaces inside microVMs, for coding agents.

>>> from pyro_mcp import Pyro
>>> pyro = Pyro()
>>> ws = pyro.create_workspace(environment="debian:12", name="repro", labels={"issue": "123"})
>>> pyro.exec_workspace("repro", command="git --version")["stdout"]
'git version 2.39.5\\n'
>>> pyro.delete_workspace("repro")["deleted"]
True

Every method runs one operation of pyro's operation API in-process (the
same Rust code as the ``pyro`` command) and returns a ``dict`` with the
fields ``pyro ... --json`` prints; failures raise :class:`PyroError`
subclasses carrying the CLI's ``code`` and ``message`` and a Python ``hint``.
See docs/python.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyro_mcp._client import Pyro
from pyro_mcp._errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PyroError,
    PyroRuntimeError,
    StateError,
)
from pyro_mcp._native import __version__
from pyro_mcp._server import Server

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyro_mcp._client import PathLike


def create_server(
    *,
    profile: str = "workspace-full",
    allow_host_paths: Sequence[PathLike] | None = None,
) -> Server:
    """An MCP server with the default state and cache directories (see
    :meth:`Pyro.create_server`); ``create_server().run()`` serves stdio in-process."""
    return Pyro().create_server(profile=profile, allow_host_paths=allow_host_paths)


__all__ = [
    "ConflictError",
    "InvalidArgumentError",
    "NotFoundError",
    "Pyro",
    "PyroError",
    "PyroRuntimeError",
    "Server",
    "StateError",
    "__version__",
    "create_server",
]
