"""`make bench-python`: the Python SDK's costs, beside the CLI's.

- `import pyro_mcp` in a fresh interpreter (and the bare interpreter start,
  for scale);
- `Pyro().list_workspaces()` on a store of 1,000 workspaces, in one
  process (the first call, which opens the store, and later calls), beside
  `pyro workspace list --json` on the same store: the Rust binary and the
  wheel's `pyro` console script (the same CLI behind a Python start).

Run with the Python of a venv that has the release wheel installed (the
Makefile makes target/bench-venv); figures, no targets. Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECORDS = 1_000


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def median_ms(samples: list[float]) -> float:
    return ms(statistics.median(samples))


def wall(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({run.returncode}): {run.stderr}")
    return elapsed, run.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pyro", required=True, help="the pyro binary (target/release/pyro)")
    parser.add_argument("--fill", required=True, help="the store filler (crates/pyro-py/examples/fill_store.rs)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    import pyro_mcp  # the installed wheel, not the source tree
    from pyro_mcp import Pyro

    script = Path(sys.executable).parent / "pyro"
    root = Path(tempfile.mkdtemp(prefix="pyro-bench-py-", dir=Path(args.output).resolve().parent))
    try:
        env = {**os.environ, "PYRO_STATE_DIR": str(root / "s"), "PYRO_CACHE_DIR": str(root / "c")}

        # 1. Import time, a fresh interpreter per sample (one warm-up).
        probe = "import time; t = time.perf_counter(); import pyro_mcp; print(time.perf_counter() - t)"
        imports, starts = [], []
        for i in range(args.runs + 1):
            out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
            bare, _ = wall([sys.executable, "-c", "pass"], env)
            if i:
                imports.append(float(out.stdout))
                starts.append(bare)

        # 2. A store of RECORDS stopped workspaces (no guests).
        wall([args.pyro, "workspace", "list", "--json"], env)  # creates the schema
        subprocess.run([args.fill, str(root / "s"), str(RECORDS)], check=True)
        argv = ["workspace", "list", "--json"]
        count = json.loads(wall([args.pyro, *argv], env)[1])["count"]
        assert count == RECORDS, count

        started = time.perf_counter()
        pyro = Pyro(base_dir=root / "s", cache_dir=root / "c")
        first = pyro.list_workspaces()
        first_ms = ms(time.perf_counter() - started)
        assert first["count"] == RECORDS, first["count"]
        sdk, native, cli, console = [], [], [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            listing = pyro.list_workspaces()
            sdk.append(time.perf_counter() - t)
            assert listing["count"] == RECORDS
            t = time.perf_counter()
            pyro._native.call("workspace_list", "{}")
            native.append(time.perf_counter() - t)
            cli.append(wall([args.pyro, *argv], env)[0])
            console.append(wall([str(script), *argv], env)[0])

        report = {
            "pyro_version": pyro_mcp.__version__,
            "python": sys.version.split()[0],
            "runs": args.runs,
            "how": {
                "import_ms": "`import pyro_mcp` timed inside a fresh interpreter (perf_counter around the import); median",
                "interpreter_start_ms": "wall time of `python -c pass`, for scale; median",
                "list_workspaces_first_ms": "Pyro(...) plus its first list_workspaces() (opens the store)",
                "list_workspaces_ms": "Pyro.list_workspaces() on an open client: params to JSON, the native call with the GIL released, JSON to dicts; median",
                "native_call_ms": "the native call alone (result as JSON text); median",
                "cli_ms": "wall time of `pyro workspace list --json` (the Rust binary) on the same store; median",
                "console_script_ms": "wall time of the wheel's `pyro workspace list --json` (Python start + the same CLI in-process); median",
            },
            "import_ms": median_ms(imports),
            "interpreter_start_ms": median_ms(starts),
            "records": RECORDS,
            "list_workspaces_first_ms": first_ms,
            "list_workspaces_ms": median_ms(sdk),
            "native_call_ms": median_ms(native),
            "cli_ms": median_ms(cli),
            "console_script_ms": median_ms(console),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(report, indent=2)
    Path(args.output).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
