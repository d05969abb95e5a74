"""Drive an MCP server (directly or through AgentMesh) with the official
Python SDK (`mcp==2.3.0`) and print one JSON line per step.

    drive.py --steps STEPS.json [--mode auto|legacy] --stdio -- CMD ARGS...
    drive.py --steps STEPS.json [--bearer TOKEN] --url http://127.0.0.1:PORT/mcp

A step is {"op": "list_tools"} | {"op": "call", "name": ..., "args": {...}}
| {"op": "list_prompts"} | {"op": "get_prompt", "name": ..., "args": {...}}
| {"op": "list_resources"} | {"op": "read_resource", "uri": ...}.
Each output line is {"ok": <result as JSON>} or {"error": {"code", "message", "data"}}.
Installed into a throw-away venv by .ci/run; never vendored.
"""

import argparse
import asyncio
import json
import sys

import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def dump(x):
    if hasattr(x, "model_dump"):
        return x.model_dump(mode="json", by_alias=True, exclude_none=True)
    return x


async def run_steps(client, steps):
    out = []
    for s in steps:
        op = s["op"]
        try:
            if op == "list_tools":
                r = await client.list_tools()
            elif op == "call":
                r = await client.call_tool(s["name"], s.get("args") or {})
            elif op == "list_prompts":
                r = await client.list_prompts()
            elif op == "get_prompt":
                r = await client.get_prompt(s["name"], s.get("args") or {})
            elif op == "list_resources":
                r = await client.list_resources()
            elif op == "read_resource":
                r = await client.read_resource(s["uri"])
            else:
                raise SystemExit(f"unknown op {op}")
            out.append({"ok": dump(r)})
        except MCPError as e:
            out.append({"error": {"code": e.error.code, "message": e.error.message, "data": e.error.data}})
    return out


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", required=True)
    ap.add_argument("--mode", default="auto")
    ap.add_argument("--url")
    ap.add_argument("--bearer")
    ap.add_argument("--stdio", action="store_true")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    with open(a.steps) as f:
        steps = json.load(f)
    if a.stdio:
        cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
        target = StdioServerParameters(command=cmd[0], args=cmd[1:])
        async with Client(target, mode=a.mode, read_timeout_seconds=60) as c:
            results = await run_steps(c, steps)
    else:
        headers = {"Authorization": f"Bearer {a.bearer}"} if a.bearer else {}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            transport = streamable_http_client(a.url, http_client=http)
            async with Client(transport, mode=a.mode, read_timeout_seconds=60) as c:
                results = await run_steps(c, steps)
    for r in results:
        print(json.dumps(r, sort_keys=True))
    sys.stdout.flush()


asyncio.run(main())
