"""``python -m pyro_mcp ...`` is the ``pyro`` command."""

from pyro_mcp._cli import main

main()
