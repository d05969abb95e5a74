#!/usr/bin/env python3
"""The crate graph, checked: dependencies point down.

Every workspace crate has a layer; a crate may depend (normal dependencies,
not dev) only on crates in lower layers. Crates in one layer (the protocol
crates and the control plane) never depend on each other, except for the
exceptions listed below, each with the issue that removes it; what two of
them need lives once below both, and what joins them (a bridge) above both.
A new crate must be given a layer here, and docs/ARCHITECTURE.md must name
every crate.

Reads `cargo metadata --no-deps` (no build). Exit 1 on any violation.
"""
import json
import pathlib
import subprocess
import sys

LAYERS = {
    "agentmesh-capability": 0,
    "agentmesh-identity": 1,
    "agentmesh-delegation": 2,
    "agentmesh-policy": 2,
    "agentmesh-audit": 2,
    "agentmesh-trust": 2,
    "agentmesh-iatp": 2,
    "agentmesh-compliance": 3,
    "agentmesh-store": 4,
    "agentmesh-engine": 5,
    "agentmesh-gateway": 6,
    # Protocols and the control plane: side by side.
    "agentmesh-mcp": 7,
    "agentmesh-a2a": 7,
    "agentmesh-server": 7,
    # Bridges between protocols: above the protocols they join.
    "agentmesh-bridge": 8,
    # Binaries.
    "agentmesh-cli": 9,
    "agentmesh-loadgen": 9,
}

# Known sideways edges, each to be removed by the issue named (none left:
# a new one needs its issue here).
EXCEPTIONS: dict[tuple[str, str], str] = {}


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    problems = []
    names = sorted(p["name"] for p in meta["packages"] if p["name"].startswith("agentmesh-"))
    for name in names:
        if name not in LAYERS:
            problems.append(f"{name}: no layer in .ci/crate_graph.py (place it before it lands)")
    edges = []
    for p in meta["packages"]:
        src = p["name"]
        for d in p["dependencies"]:
            dst = d["name"]
            if d["kind"] is not None or not dst.startswith("agentmesh-"):
                continue
            edges.append((src, dst))
            if src not in LAYERS or dst not in LAYERS:
                continue
            if (src, dst) in EXCEPTIONS:
                continue
            if LAYERS[dst] >= LAYERS[src]:
                how = "sideways" if LAYERS[dst] == LAYERS[src] else "upward"
                problems.append(f"{src} -> {dst}: {how} dependency")
    for (src, dst), why in EXCEPTIONS.items():
        if (src, dst) not in edges:
            problems.append(f"{src} -> {dst} is gone: remove its exception ({why})")
    arch = (root / "docs" / "ARCHITECTURE.md").read_text()
    for name in names:
        if f"`{name}`" not in arch:
            problems.append(f"docs/ARCHITECTURE.md does not describe `{name}`")
    if problems:
        print("crate graph check failed:")
        for p in problems:
            print("  " + p)
        return 1
    print(f"crate graph: {len(names)} crates, {len(edges)} edges, all pointing down "
          f"({len(EXCEPTIONS)} tracked exception(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
