"""A small MCP server written with the official Python SDK (`mcp==2.3.0`),
kept as test code for AgentMesh's interop tests. Dual-era (the SDK serves
both the initialize handshake and 2026-07-28 stateless requests).

    fixture_server.py stdio
    fixture_server.py http PORT

Tools work on real files under FIXTURE_ROOT (default: the working
directory). FIXTURE_ECHO_DESCRIPTION changes the `echo` tool's description,
so tests can change a definition between two runs (tool pinning).
"""

import os
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

ROOT = Path(os.environ.get("FIXTURE_ROOT", os.getcwd()))
mcp = MCPServer("agentmesh-fixture", version="1.0.0")


@mcp.tool(description=os.environ.get("FIXTURE_ECHO_DESCRIPTION", "Echo the text back."))
def echo(text: str) -> str:
    return text


@mcp.tool(description="Read a UTF-8 text file.")
def read_file(path: str) -> str:
    return Path(path).read_text()


@mcp.tool(description="Write a UTF-8 text file.")
def write_file(path: str, content: str) -> str:
    Path(path).write_text(content)
    return f"wrote {len(content)} characters to {path}"


@mcp.tool(description="Delete a file.")
def delete_file(path: str) -> str:
    Path(path).unlink()
    return f"deleted {path}"


@mcp.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@mcp.tool(description="Always fails (a tool error, not a protocol error).")
def fail(reason: str) -> str:
    raise ValueError(reason)


@mcp.prompt(description="A greeting.")
def greet(name: str) -> str:
    return f"Hello, {name}!"


@mcp.resource("fixture://motd", description="Message of the day.")
def motd() -> str:
    return "be kind to your agents"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "http":
        port = int(sys.argv[2]) if len(sys.argv) > 2 else 38002
        mcp.run(transport="streamable-http", host="127.0.0.1", port=port)
    else:
        mcp.run()
