"""Drives a shelf MCP server with the official Python SDK (`mcp` on PyPI),
as an assistant would: connect (stdio or streamable HTTP), list the tools,
call the ones asked for, and print what came back as one JSON document.

Usage: python mcp_client.py SPEC.json
SPEC: {"stdio": {"command", "args", "env", "cwd"}} or {"http": {"url", "token"}},
      plus "calls": [{"tool": name, "args": {...}}], "resources": [uri, ...]
      (read after listing every page of resources) and "mode": "legacy"
      (the initialize handshake), "2026-07-28" (pinned: server/discover, the
      version in every request's _meta) or "auto" (the default).
With a pinned mode the client also probes server/discover at a version no
server speaks and records the error (code and data).
Tool failures and refused reads are recorded, not raised, so the test can
assert on them.
"""

import asyncio
import json
import sys

import httpx2
import mcp_types
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.client.streamable_http import streamable_http_client


def describe(e):
    """An exception, or the leaves of an exception group, in one line."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


def transport(spec):
    if "stdio" in spec:
        s = spec["stdio"]
        return StdioServerParameters(
            command=s["command"], args=s["args"], env=s.get("env"), cwd=s.get("cwd")
        )
    h = spec["http"]
    headers = {"Authorization": f"Bearer {h['token']}"} if h.get("token") else {}
    return streamable_http_client(h["url"], http_client=httpx2.AsyncClient(headers=headers, timeout=60))


async def main(spec):
    out = {"calls": [], "reads": []}
    try:
        mode = spec.get("mode", "auto")
        async with Client(transport(spec), mode=mode, read_timeout_seconds=90) as client:
            if mode not in ("legacy", "auto"):
                # A pinned client skips discovery (it adopts a synthesized
                # result); ask the server, as a client wanting its
                # instructions does, and adopt what it says.
                raw = await client.session.send_discover(mode)
                client.session.adopt(mcp_types.DiscoverResult.model_validate(raw))
                try:
                    await client.session.send_discover("2099-01-01")
                    out["unsupported_probe"] = "answered"
                except MCPError as e:
                    out["unsupported_probe"] = {"code": e.code, "data": e.error.data}
            out["protocol_version"] = client.protocol_version
            info = client.server_info
            out["server_name"] = info.name if info else None
            out["instructions"] = client.instructions
            tools = await client.list_tools()
            out["tools"] = [
                {"name": t.name, "inputSchema": t.input_schema, "outputSchema": t.output_schema}
                for t in tools.tools
            ]
            for call in spec.get("calls", []):
                try:
                    r = await client.call_tool(call["tool"], call.get("args", {}))
                    out["calls"].append(
                        {
                            "isError": bool(r.is_error),
                            "text": "\n".join(c.text for c in r.content if getattr(c, "text", None) is not None),
                            "structured": r.structured_content,
                        }
                    )
                except Exception as e:  # a protocol failure: the test says whether one was expected
                    out["calls"].append({"exception": describe(e)})
            if spec.get("resources"):
                listed, cursor = [], None
                while True:
                    page = await client.list_resources(cursor=cursor)
                    listed += page.resources
                    cursor = page.next_cursor
                    if not cursor:
                        break
                out["resources"] = [{"uri": r.uri, "name": r.name, "mimeType": r.mime_type} for r in listed]
                for uri in spec["resources"]:
                    try:
                        r = await client.read_resource(uri)
                        out["reads"].append(
                            {
                                "contents": [
                                    {"uri": c.uri, "mimeType": c.mime_type, "text": getattr(c, "text", None), "meta": c.meta}
                                    for c in r.contents
                                ]
                            }
                        )
                    except MCPError as e:
                        out["reads"].append({"exception": describe(e), "code": e.code, "data": e.error.data})
    except Exception as e:
        out["connect_error"] = describe(e)
    print(json.dumps(out))


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        asyncio.run(main(json.load(f)))
