"""MCP serving in-process: the same server as ``pyro mcp serve``."""

from __future__ import annotations

import sys

from pyro_mcp import _native
from pyro_mcp._errors import InvalidArgumentError, error_from


class Server:
    """An MCP server for one profile, made by :func:`create_server` or
    :meth:`Pyro.create_server`.

    :meth:`run` serves MCP on this process's stdin and stdout (the server
    is pyro's Rust MCP server, run in-process with the GIL released) until
    the client closes stdin.
    """

    def __init__(self, native: _native.Native, profile: str, allow_host_paths: list[str]) -> None:
        self._native = native
        self._profile = profile
        self._allow_host_paths = allow_host_paths

    def __repr__(self) -> str:
        return f"Server(profile={self._profile!r}, allow_host_paths={self._allow_host_paths!r})"

    @property
    def profile(self) -> str:
        """``vm-run``, ``workspace-core`` or ``workspace-full``."""
        return self._profile

    @property
    def allow_host_paths(self) -> list[str]:
        """Host directories tools may read paths from (empty: the working directory)."""
        return list(self._allow_host_paths)

    def run(self, transport: str = "stdio") -> None:
        """Serve until the client closes stdin (only the ``stdio`` transport).

        From then on file descriptor 1 is the server's: anything else the
        process writes to stdout goes to stderr, during and after serving,
        so nothing can corrupt the MCP stream. Ctrl-C (SIGINT in the main
        thread) stops serving, cleans up calls in flight and raises
        ``KeyboardInterrupt``.
        """
        if transport != "stdio":
            raise InvalidArgumentError(
                "invalid_argument", f"unsupported MCP transport '{transport}'; pyro serves stdio", None
            )
        sys.stdout.flush()
        try:
            self._native.mcp_serve(self._profile, self._allow_host_paths)
        except _native.NativeError as e:
            raise error_from(*e.args) from None
