# Type stubs of the native module (crates/pyro-py/src/lib.rs); a test
# checks them against the runtime signatures.
from os import PathLike
from pathlib import Path

__version__: str

class NativeError(Exception):
    """args: (code, message, hint)."""

    args: tuple[str, str, str | None]

class Native:
    def __new__(
        cls,
        state_dir: str | PathLike[str] | None = None,
        cache_dir: str | PathLike[str] | None = None,
        agent_path: str | PathLike[str] | None = None,
    ) -> Native: ...
    def call(self, op: str, params_json: str) -> str: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def cache_dir(self) -> Path: ...
    @property
    def agent_path(self) -> Path: ...
    def mcp_check(self, profile: str, allow_host_paths: list[str]) -> None: ...
    def mcp_serve(self, profile: str, allow_host_paths: list[str]) -> None: ...

def cli_main(argv: list[bytes]) -> int: ...
def schema() -> str: ...
