"""The static guest agent shipped inside the wheel.

Every guest runs pyro's agent as PID 1; pyro finds it through
``PYRO_AGENT_PATH``, else beside the ``pyro`` binary. An installed wheel has
no ``pyro`` binary beside the agent (the command is a console script), so
the package points pyro at its own copy, ``pyro_mcp/_agent/pyro-agent``,
unless ``PYRO_AGENT_PATH`` names another one.
"""

from __future__ import annotations

import os

# os.path, not pathlib: this runs on `import pyro_mcp`, which stays cheap.
AGENT = os.path.join(os.path.dirname(os.path.realpath(__file__)), "_agent", "pyro-agent")


def agent_override() -> str | None:
    """The bundled agent, when it is there and ``PYRO_AGENT_PATH`` is unset."""
    if os.environ.get("PYRO_AGENT_PATH", "").strip():
        return None
    return AGENT if os.path.isfile(AGENT) else None
