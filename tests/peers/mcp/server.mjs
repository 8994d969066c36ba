// A real OAuth-protected MCP server for Latchkey's end-to-end tests, built on npm @modelcontextprotocol/sdk (v1):
// Streamable HTTP at /mcp (stateful sessions, SSE or JSON responses) and the legacy HTTP+SSE transport at /sse
// (+ POST /messages?sessionId=…). Every MCP request needs a bearer JWT access token from the real oidc-provider
// (tests/peers/oidc) whose audience is the resource it is sent to (issuer, audience and typ at+jwt checked with
// jose against the AS's JWKS). Without one: 401 with `WWW-Authenticate: Bearer resource_metadata=…, scope=…`
// (the SDK's requireBearerAuth); a tool that needs more scope: 403 `insufficient_scope` with `scope="…"`.
//
// The server starts before the authorization server (whose RESOURCES must name this server's URLs), so it
// prints {"ready":true,"base":…,"mcp":…,"sse":…} and waits for POST /__test/config {"issuer":…}.
//
// Tools: whoami (caller's sub and scopes), echo {text}, count {steps, delayMs} (one notifications/progress per
// step when the caller sent a progressToken, streamed as SSE), admin_op (needs mcp:admin too).
//
// Environment: PORT (default 0), JSON_RESPONSE "1" (Streamable HTTP answers application/json, not SSE).
// Test endpoints: GET /__test/counters, POST /__test/counters/reset, POST /__test/config {issuer},
// POST /__test/faults {reject401: n} (the next n token checks fail with 401 invalid_token, whatever the token),
// {headers: {name: value}} (sent on every MCP answer, as a hostile server would: e.g. a WWW-Authenticate challenge on
// a 200, or a forged latchkey-diagnostic; the SDK's own 401 challenge still wins on a 401).
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import express from 'express';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';

const env = process.env;
const app = express();
app.disable('x-powered-by');
const server = http.createServer(app);
await new Promise((r) => server.listen(Number(env.PORT ?? 0), '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;
const resources = { mcp: `${base}/mcp`, sse: `${base}/sse` };
const toolScopes = { admin_op: ['mcp:tools', 'mcp:admin'] };

let issuer = null;
const faults = { reject401: 0, headers: {} };
let jwks = null;
const counters = { requests: [], unauthorized: 0, forbidden: 0, toolCalls: {}, sessionsDeleted: 0, tokens: [], rejected: [] };

app.use((req, res, next) => {
  if (req.path.startsWith('/__test/')) return next();
  res.on('finish', () => {
    counters.requests.push({
      method: req.method, path: req.path, status: res.statusCode,
      session: req.get('mcp-session-id') ?? null, protocolVersion: req.get('mcp-protocol-version') ?? null,
      bearer: /^Bearer /i.test(req.get('authorization') ?? ''), rpc: req.body?.method ?? null,
    });
    if (res.statusCode === 401) counters.unauthorized++;
    if (res.statusCode === 403) counters.forbidden++;
  });
  for (const [name, value] of Object.entries(faults.headers ?? {})) res.setHeader(name, value);
  next();
});

function verifierFor(resource) {
  return {
    async verifyAccessToken(token) {
      if (faults.reject401 > 0) { faults.reject401--; throw new InvalidTokenError('invalid token: rejected by the test (reject401)'); }
      if (!jwks) throw new InvalidTokenError('the server has no authorization server yet');
      try {
        const { payload: p } = await jwtVerify(token, jwks, { issuer, audience: resource, typ: 'at+jwt' });
        // Which distinct tokens were seen (by jti, never the token), so a test can tell a refresh happened.
        if (!counters.tokens.includes(p.jti)) counters.tokens.push(p.jti);
        return { token, clientId: p.client_id, scopes: String(p.scope ?? '').split(' ').filter(Boolean),
                 expiresAt: p.exp, resource: new URL(resource), extra: { sub: p.sub } };
      } catch (e) {
        // Why, and how the token's life compared with this server's clock (never the token itself).
        let claims = {};
        try { claims = decodeJwt(token); } catch { /* not a JWT */ }
        const now = Date.now();
        counters.rejected.push({ code: e.code ?? 'error', iat: claims.iat ?? null, exp: claims.exp ?? null, at: now / 1000,
                                 pastExpMs: claims.exp ? now - claims.exp * 1000 : null });
        throw new InvalidTokenError(`invalid token: ${e.code ?? e.message}`);
      }
    },
  };
}

const prmUrl = (name) => `${base}/.well-known/oauth-protected-resource/${name}`;
for (const name of Object.keys(resources)) {
  app.get(`/.well-known/oauth-protected-resource/${name}`, (req, res) => {
    res.json({ resource: resources[name], authorization_servers: issuer ? [issuer] : [], scopes_supported: ['mcp:tools'],
               bearer_methods_supported: ['header'], resource_name: `test-mcp (${name})` });
  });
}

const auth = (name, scopes) => requireBearerAuth({ verifier: verifierFor(resources[name]), requiredScopes: scopes, resourceMetadataUrl: prmUrl(name) });
const scopesFor = (body) => (body?.method === 'tools/call' ? (toolScopes[body.params?.name] ?? ['mcp:tools']) : ['mcp:tools']);
const authFor = (name) => (req, res, next) => auth(name, scopesFor(req.body))(req, res, next);

function build() {
  const s = new McpServer({ name: 'test-mcp', version: '0.0.1' });
  s.registerTool('whoami', { description: 'The caller: subject and scopes of the token', inputSchema: {} },
    async (_a, extra) => ({ content: [{ type: 'text', text: JSON.stringify({ sub: extra.authInfo?.extra?.sub ?? null, scopes: extra.authInfo?.scopes ?? [] }) }] }));
  s.registerTool('echo', { description: 'Echoes its text', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }));
  s.registerTool('count', { description: 'Counts to steps, one progress notification per step', inputSchema: { steps: z.number().int(), delayMs: z.number().int().optional() } },
    async ({ steps, delayMs }, extra) => {
      const token = extra._meta?.progressToken;
      for (let i = 1; i <= steps; i++) {
        if (token !== undefined) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: steps, message: `step ${i}` } });
        }
        await new Promise((r) => setTimeout(r, delayMs ?? 200)); // after each step, so the last one is not racing the result
      }
      return { content: [{ type: 'text', text: `counted to ${steps}` }] };
    });
  s.registerTool('admin_op', { description: 'Needs the mcp:admin scope', inputSchema: {} },
    async () => ({ content: [{ type: 'text', text: 'admin ok' }] }));
  return s;
}

function countTool(body) {
  for (const m of Array.isArray(body) ? body : [body]) {
    if (m?.method === 'tools/call') counters.toolCalls[m.params?.name] = (counters.toolCalls[m.params?.name] ?? 0) + 1;
  }
}

// Streamable HTTP, stateful: one McpServer + transport per session.
const sessions = new Map();
app.all('/mcp', express.json(), authFor('mcp'), async (req, res) => {
  const id = req.get('mcp-session-id');
  let transport = id ? sessions.get(id) : undefined;
  if (!transport) {
    if (req.method !== 'POST' || req.body?.method !== 'initialize') {
      res.status(id ? 404 : 400).json({ jsonrpc: '2.0', id: null, error: { code: -32000, message: id ? 'unknown session' : 'no session: initialize first' } });
      return;
    }
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: env.JSON_RESPONSE === '1',
      onsessioninitialized: (sid) => { sessions.set(sid, transport); },
    });
    transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
    await build().connect(transport);
  }
  if (req.method === 'DELETE') counters.sessionsDeleted++;
  countTool(req.body);
  await transport.handleRequest(req, res, req.body);
});

// The legacy HTTP+SSE transport (2024-11-05): GET /sse opens the stream, whose first event names the POST URL.
const legacy = new Map();
app.get('/sse', authFor('sse'), async (req, res) => {
  const transport = new SSEServerTransport('/messages', res);
  legacy.set(transport.sessionId, transport);
  res.on('close', () => legacy.delete(transport.sessionId));
  await build().connect(transport);
});
app.post('/messages', express.json(), authFor('sse'), async (req, res) => {
  const transport = legacy.get(String(req.query.sessionId ?? ''));
  if (!transport) {
    res.status(404).json({ error: 'unknown session' });
    return;
  }
  countTool(req.body);
  await transport.handlePostMessage(req, res, req.body);
});

app.get('/__test/counters', (req, res) => res.json(counters));
app.post('/__test/counters/reset', (req, res) => {
  Object.assign(counters, { requests: [], unauthorized: 0, forbidden: 0, toolCalls: {}, sessionsDeleted: 0, tokens: [], rejected: [] });
  res.json({ ok: true });
});
app.post('/__test/faults', express.json(), (req, res) => { Object.assign(faults, req.body ?? {}); res.json(faults); });
app.post('/__test/config', express.json(), async (req, res, next) => {
  try {
    issuer = req.body.issuer;
    const meta = await (await fetch(`${issuer}/.well-known/openid-configuration`, { headers: { 'user-agent': 'latchkey-peer-self' } })).json();
    jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
    res.json({ ok: true });
  } catch (e) {
    next(e);
  }
});

console.log(JSON.stringify({ ready: true, base, mcp: resources.mcp, sse: resources.sse }));
