// Drives a shelf MCP server with the official TypeScript client, the v2
// line (`@modelcontextprotocol/client`, pinned in tests/support/npm/
// package-lock.json and installed by scripts/setup-test-services), pinned to
// revision 2026-07-28 as an assistant built on it would be: connect (stdio
// or streamable HTTP), list the tools, call the ones asked for, read the
// resources asked for, and print what came back as one JSON document, in
// the shape tests/support/mcp_client.py prints.
//
// Usage: node mcp_client.mjs SPEC.json
// SPEC: {"modules": the node_modules directory holding the client,
//        "stdio": {"command", "args", "env", "cwd"}} or {"http": {"url", "token"}},
//       plus "calls": [{"tool": name, "args": {...}}] and
//       "resources": [uri, ...] (read after listing them).
// Tool failures and refused reads are recorded, not raised, so the test can
// assert on them.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const PINNED = "2026-07-28";

// The client is installed outside the checkout (beside the Python venv),
// so it is imported through its package's own `exports` map rather than
// by bare name, which Node resolves only from this file's directory.
async function load(modules, name, subpath) {
  const dir = join(modules, name);
  const manifest = JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
  const target = manifest.exports[subpath].import.default;
  return import(pathToFileURL(join(dir, target)).href);
}

function describe(e) {
  return `${e?.name ?? "Error"}: ${e?.message ?? e}`;
}

async function main(spec) {
  const out = { calls: [], reads: [] };
  const sdk = await load(spec.modules, "@modelcontextprotocol/client", ".");
  const client = new sdk.Client(
    { name: "shelf-tests", version: "1.0.0" },
    { versionNegotiation: { mode: { pin: PINNED } } },
  );
  let transport;
  if (spec.stdio) {
    const { StdioClientTransport } = await load(spec.modules, "@modelcontextprotocol/client", "./stdio");
    const s = spec.stdio;
    transport = new StdioClientTransport({ command: s.command, args: s.args, env: s.env, cwd: s.cwd, stderr: "inherit" });
  } else {
    const h = spec.http;
    const options = h.token ? { authProvider: { token: async () => h.token } } : {};
    transport = new sdk.StreamableHTTPClientTransport(new URL(h.url), options);
  }
  const timeout = { timeout: 90_000 };
  try {
    await client.connect(transport, timeout);
    out.protocol_version = client.getNegotiatedProtocolVersion() ?? null;
    out.era = client.getProtocolEra() ?? null;
    out.server_name = client.getServerVersion()?.name ?? null;
    out.instructions = client.getInstructions() ?? null;
    const { tools } = await client.listTools(undefined, timeout);
    out.tools = tools.map((t) => ({ name: t.name, inputSchema: t.inputSchema, outputSchema: t.outputSchema }));
    for (const call of spec.calls ?? []) {
      try {
        const r = await client.callTool({ name: call.tool, arguments: call.args ?? {} }, timeout);
        out.calls.push({
          isError: Boolean(r.isError),
          text: r.content.filter((c) => typeof c.text === "string").map((c) => c.text).join("\n"),
          structured: r.structuredContent ?? null,
        });
      } catch (e) {
        // A protocol failure: the test says whether one was expected.
        out.calls.push({ exception: describe(e) });
      }
    }
    if (spec.resources?.length) {
      const listed = await client.listResources(undefined, timeout);
      out.resources = listed.resources.map((r) => ({ uri: r.uri, name: r.name, mimeType: r.mimeType ?? null }));
      for (const uri of spec.resources) {
        try {
          const r = await client.readResource({ uri }, timeout);
          out.reads.push({ contents: r.contents.map((c) => ({ uri: c.uri, mimeType: c.mimeType ?? null, text: c.text ?? null, meta: c._meta ?? null })) });
        } catch (e) {
          out.reads.push({ exception: describe(e), code: e?.code ?? null, data: e?.data ?? null });
        }
      }
    }
  } catch (e) {
    out.connect_error = describe(e);
  } finally {
    await client.close().catch(() => {});
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

await main(JSON.parse(await readFile(process.argv[2], "utf8")));
