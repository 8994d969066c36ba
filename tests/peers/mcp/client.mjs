// A real MCP client (npm @modelcontextprotocol/sdk's Client) for Latchkey's end-to-end tests. It connects, lists
// the tools, makes the calls in MCP_CALLS and prints one JSON line with what it saw (progress notifications with
// their arrival times, so a test can tell a streamed answer from a buffered one).
//
//   node client.mjs http URL          Streamable HTTP; header "Authorization: <MCP_AUTH>" when MCP_AUTH is set
//   node client.mjs sse URL           the legacy HTTP+SSE transport; same header
//   node client.mjs stdio CMD ARG…    spawns a stdio server (e.g. latchkey mcp stdio NAME) with this environment
//
// MCP_CALLS: JSON [{"name":"whoami","args":{},"progress":false}, …] (default: whoami). The secret in MCP_AUTH is
// never printed.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const env = process.env;
const [mode, target, ...rest] = process.argv.slice(2);
// MCP_CALLS=all calls every listed tool with no arguments (the conformance adapter).
let calls = env.MCP_CALLS === 'all' ? null : JSON.parse(env.MCP_CALLS ?? '[{"name":"whoami"}]');
const headers = env.MCP_AUTH ? { Authorization: env.MCP_AUTH } : {};
let transport;
if (mode === 'http') {
  transport = new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers } });
} else if (mode === 'sse') {
  transport = new SSEClientTransport(new URL(target), {
    requestInit: { headers },
    eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers ?? {}), ...headers } }) },
  });
} else if (mode === 'stdio') {
  transport = new StdioClientTransport({ command: target, args: rest, env: { ...process.env }, stderr: 'inherit' });
} else {
  console.error('usage: client.mjs http|sse|stdio TARGET …');
  process.exit(2);
}

const out = { ok: false, tools: [], calls: [] };
const client = new Client({ name: 'latchkey-test-client', version: '0.0.1' });
try {
  await client.connect(transport);
  out.server = client.getServerVersion()?.name ?? null;
  out.session = transport.sessionId ?? null;
  out.tools = (await client.listTools()).tools.map((t) => t.name);
  calls ??= out.tools.map((name) => ({ name }));
  for (const c of calls) {
    const progress = [];
    const t0 = Date.now();
    const options = { timeout: 60000 };
    if (c.progress) options.onprogress = (p) => progress.push({ progress: p.progress, total: p.total, t: Date.now() - t0 });
    try {
      const r = await client.callTool({ name: c.name, arguments: c.args ?? {} }, undefined, options);
      out.calls.push({ name: c.name, ok: !r.isError, text: r.content?.[0]?.text ?? null, progress, ms: Date.now() - t0 });
    } catch (e) {
      out.calls.push({ name: c.name, ok: false, error: String(e.message ?? e), code: e.code ?? null, progress, ms: Date.now() - t0 });
    }
  }
  if (env.MCP_SOAK_SECONDS) {
    // bench/mcp-soak.sh: whoami every 100 ms for the given time; count what failed and why.
    const until = Date.now() + Number(env.MCP_SOAK_SECONDS) * 1000;
    out.soak = { calls: 0, failed: 0, errors: {} };
    while (Date.now() < until) {
      out.soak.calls++;
      try {
        const r = await client.callTool({ name: 'whoami', arguments: {} });
        if (r.isError) throw new Error(r.content?.[0]?.text ?? 'tool error');
      } catch (e) {
        out.soak.failed++;
        const k = String(e.message ?? e).slice(0, 120);
        out.soak.errors[k] = (out.soak.errors[k] ?? 0) + 1;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (mode === 'http') await transport.terminateSession();
  out.ok = true;
} catch (e) {
  out.error = String(e.message ?? e);
} finally {
  await client.close().catch(() => {});
}
console.log(JSON.stringify(out));
process.exit(0);
