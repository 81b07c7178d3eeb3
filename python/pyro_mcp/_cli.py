"""The ``pyro`` console script: the Rust CLI, run in this process."""

from __future__ import annotations

import os
import sys

from pyro_mcp import _native
from pyro_mcp._bundle import agent_override


def main() -> None:
    """Run ``pyro`` with this process's arguments and exit with its status."""
    agent = agent_override()
    if agent is not None:
        # The CLI reads its configuration from the environment; one thread yet.
        os.environ["PYRO_AGENT_PATH"] = agent
    argv = [b"pyro", *(os.fsencode(arg) for arg in sys.argv[1:])]
    sys.stdout.flush()
    sys.exit(_native.cli_main(argv))
