// A real OAuth 2.1 / OpenID authorization server for Latchkey's end-to-end tests: npm oidc-provider (v9),
// configured through environment variables, listening on 127.0.0.1 on a free port. It prints one JSON line
// ({"ready":true,"issuer":…,"base":…,"resource":…}) when it is ready. The C# fixture that drives it is
// tests/Latchkey.Tests/Peers/OidcProviderPeer.cs.
//
// Environment knobs:
//   PORT            listen port (default 0: a free one)
//   ISSUER_PATH     mount point, e.g. "/tenant1" for a path issuer
//   RFC8414_ALIAS   "1": also serve the RFC 8414 path-inserted URL /.well-known/oauth-authorization-server<path>
//   CLIENTS         JSON array of pre-registered client metadata
//   RESOURCES       extra resource indicators accepted besides this server's own <base>/mcp stub
//   RESOURCE_UNKNOWN "1": do not accept the <base>/mcp stub as a resource (invalid_target)
//   RESOURCE_SCOPES scopes of the resource (default "mcp:tools mcp:admin")
//   WRONG_AUDIENCE  "1": access tokens for a resource carry another audience
//   AT_TTL          access-token lifetime in seconds (default 300); POST /__test/faults {"atTtl":N} changes it
//   AT_FORMAT       "jwt" (default) or "opaque" for resource access tokens
//   ROTATE          "0": refresh tokens are not rotated
//   PKCE_REQUIRED   "0": PKCE only for public clients (the library default); otherwise always required
//   DCR_IAT         an initial access token that dynamic registration then requires
//   CIMD            "0": no Client ID Metadata Documents
//   CIMD_DOCS       JSON [[url, document], …] served to the provider's fetch from memory (no network);
//                   https://client.example/latchkey is always there
//   TEST_USER       the account signed in when there is no login_hint (default "test-user"; faults.user changes it)
//   LIE             a lie told from the start (see faults.lie)
//
// Test endpoints (not under the mount point):
//   GET  /__test/counters          {refresh, refreshError, revoked, tokenRequests, byGrant:{grantId:n},
//                                  wellKnown:{"STATUS PATH":n}, …}
//   POST /__test/counters/reset
//   POST /__test/faults            merge {delayMs, failNext, dropNextRefresh, dropNextRefreshBeforeCommit,
//                                  holdNextRefresh, holdNextRefreshBeforeCommit, release, atTtl, lie, user,
//                                  slowRefreshAnswers, slowAnswerMs}
//                                  slowRefreshAnswers: the next n refreshes are committed (the token is issued, its
//                                  life running) and answered slowAnswerMs later
//                                  holdNextRefreshBeforeCommit: the next refresh waits for release before the grant
//                                  is touched; if its client went away meanwhile, it is abandoned (nothing rotated)
//                                  lie: issuer | no_s256 | http_endpoint | invalid_json | oversized (metadata),
//                                  prm_resource (resource metadata), state_wrong | iss_wrong | iss_missing (redirect)
//                                  echoRefresh: {status, body, headers} answers every refresh with that status, JSON
//                                  body and headers instead of tokens, after replacing {refresh_token} and
//                                  {client_secret} in every string with what the request carried (a hostile or
//                                  careless server that quotes the request in its error); null switches it off
//   POST /__test/introspect        {token} → what the server knows of it (active, kind, grant alive)
//   GET  /mcp                      a protected-resource stub: 401 with an RFC 9728 challenge
//   GET  /.well-known/oauth-protected-resource/mcp   its metadata
import http from 'node:http';
import express from 'express';
import { createLocalJWKSet, jwtVerify, decodeJwt } from 'jose';
import { Provider, errors } from 'oidc-provider';

const env = process.env;
const mount = env.ISSUER_PATH ?? '';
const counters = {
  refresh: 0, refreshError: 0, revoked: 0, tokenRequests: 0, refreshRequests: 0, held: 0, dropped: 0, slowed: 0,
  byGrant: {}, byGrantType: {}, errors: {}, wellKnown: {},
};
const faults = {
  delayMs: 0, failNext: 0, dropNextRefresh: false, dropNextRefreshBeforeCommit: false, holdNextRefresh: false,
  holdNextRefreshBeforeCommit: false, release: false, slowRefreshAnswers: 0, slowAnswerMs: 0, echoRefresh: null, atTtl: Number(env.AT_TTL ?? 300), lie: env.LIE ?? '', user: env.TEST_USER ?? 'test-user',
};
let releaseHeld = () => {};

const app = express();
app.disable('x-powered-by');
// Which metadata URLs were asked for, with their status ("404 /.well-known/…"): the discovery order, observed.
app.use((req, res, next) => {
  if (req.path.includes('/.well-known/') && req.get('user-agent') !== 'latchkey-peer-self') {
    const path = req.path; // before a mount point strips it
    res.on('finish', () => { const k = `${res.statusCode} ${path}`; counters.wellKnown[k] = (counters.wellKnown[k] ?? 0) + 1; });
  }
  next();
});
const server = http.createServer(app);
await new Promise((r) => server.listen(Number(env.PORT ?? 0), '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;
const issuer = base + mount;
const ownResource = `${base}/mcp`;
const resources = [...(env.RESOURCE_UNKNOWN === '1' ? [] : [ownResource]), ...(env.RESOURCES ?? '').split(',').filter(Boolean)];

const cimdDocs = new Map(JSON.parse(env.CIMD_DOCS ?? '[]'));
const defaultCimd = 'https://client.example/latchkey';
if (!cimdDocs.has(defaultCimd)) {
  cimdDocs.set(defaultCimd, {
    client_id: defaultCimd,
    client_name: 'Latchkey (client metadata document)',
    application_type: 'native',
    redirect_uris: ['http://127.0.0.1/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  });
}

async function cimdFetch(url, options) {
  const doc = cimdDocs.get(String(url));
  if (doc) {
    return new Response(JSON.stringify(doc), { headers: { 'content-type': 'application/json', 'cache-control': 'max-age=60' } });
  }
  return globalThis.fetch(url, options); // still SSRF-guarded by the provider's dispatcher
}

const atTtl = () => Math.max(1, Number(faults.atTtl) || 300);

const provider = new Provider(issuer, {
  clients: JSON.parse(env.CLIENTS ?? '[]'),
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  scopes: ['openid', 'offline_access'],
  pkce: { required: () => env.PKCE_REQUIRED !== '0' },
  rotateRefreshToken: env.ROTATE !== '0',
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? atTtl(),
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? atTtl(),
    AuthorizationCode: 60, RefreshToken: 86400, Grant: 86400, Session: 3600, Interaction: 600, DeviceCode: 600,
  },
  interactions: { url: (ctx, i) => `${mount}/interaction/${i.uid}` },
  // Cookies are not marked Secure over plain HTTP, so the tests' cookie jar works on loopback.
  cookies: { keys: ['latchkey-test-peer-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true, initialAccessToken: env.DCR_IAT || false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: {
      enabled: true,
      // Stable, plain pages: the test "browser" submits the first form it finds.
      userCodeInputSource: async (ctx, form) => { ctx.body = `<!doctype html><html><body>${form}</body></html>`; },
      userCodeConfirmSource: async (ctx, form) => { ctx.body = `<!doctype html><html><body>${form}</body></html>`; },
      successSource: async (ctx) => { ctx.body = '<!doctype html><html><head><title>Sign-in Success</title></head><body>Sign-in Success</body></html>'; },
    },
    clientIdMetadataDocument: { enabled: env.CIMD !== '0', ack: 'draft-02' },
    resourceIndicators: {
      enabled: true,
      useGrantedResource: async () => true,
      defaultResource: async (ctx, client, oneOf) => oneOf ?? undefined,
      getResourceServerInfo: async (ctx, indicator) => {
        if (!resources.includes(indicator)) throw new errors.InvalidTarget();
        return {
          scope: env.RESOURCE_SCOPES ?? 'mcp:tools mcp:admin',
          audience: env.WRONG_AUDIENCE === '1' ? 'https://elsewhere.example' : indicator,
          accessTokenTTL: atTtl(),
          accessTokenFormat: env.AT_FORMAT ?? 'jwt',
        };
      },
    },
  },
  fetch: cimdFetch,
});
provider.proxy = false;

provider.on('grant.success', (ctx) => {
  const type = ctx.oidc.params.grant_type;
  counters.byGrantType[type] = (counters.byGrantType[type] ?? 0) + 1;
  if (type === 'refresh_token') {
    counters.refresh++;
    const grantId = ctx.oidc.entities.Grant?.jti ?? 'unknown';
    counters.byGrant[grantId] = (counters.byGrant[grantId] ?? 0) + 1;
  }
});
provider.on('grant.error', (ctx, err) => {
  if (ctx.oidc?.params?.grant_type === 'refresh_token') {
    counters.refreshError++;
    counters.errors[err?.error ?? 'unknown'] = (counters.errors[err?.error ?? 'unknown'] ?? 0) + 1;
  }
});
provider.on('grant.revoked', () => { counters.revoked++; });

// Fault injection around /token. Koa writes the response only after this chain resolves, so destroying the
// socket after next() loses an answer the server has already committed (a rotation whose answer is lost).
provider.use(async (ctx, next) => {
  if (ctx.path !== '/token' || ctx.method !== 'POST') return next();
  counters.tokenRequests++;
  if (faults.delayMs) await new Promise((r) => setTimeout(r, faults.delayMs));
  if (faults.failNext > 0) {
    faults.failNext--;
    ctx.status = 503;
    ctx.body = { error: 'temporarily_unavailable', error_description: 'injected by the test' };
    return;
  }
  // The grant type is known only after the body is parsed, inside the chain; peek at the raw form instead.
  const isRefresh = await peekRefresh(ctx);
  if (isRefresh) counters.refreshRequests++;
  if (isRefresh && faults.echoRefresh) {
    const form = new URLSearchParams(ctx.req.body.toString('utf8'));
    const basic = /^Basic (.+)$/i.exec(ctx.get('authorization') ?? '');
    const fromBasic = basic ? decodeURIComponent(Buffer.from(basic[1], 'base64').toString('utf8').split(':').slice(1).join(':')) : null;
    const sent = { refresh_token: form.get('refresh_token') ?? '', client_secret: form.get('client_secret') ?? fromBasic ?? '' };
    const fill = (v) => (typeof v === 'string' ? v.replace(/\{(refresh_token|client_secret)\}/g, (_, k) => sent[k])
      : Array.isArray(v) ? v.map(fill) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)])) : v);
    const echo = fill(faults.echoRefresh);
    counters.refreshError++;
    for (const [name, value] of Object.entries(echo.headers ?? {})) ctx.set(name, value);
    ctx.status = echo.status ?? 400;
    ctx.type = 'application/json';
    ctx.body = JSON.stringify(echo.body ?? {});
    return;
  }
  if (isRefresh && faults.dropNextRefreshBeforeCommit) {
    faults.dropNextRefreshBeforeCommit = false;
    counters.dropped++;
    ctx.req.socket.destroy(); // the request never reached the grant: nothing rotated
    ctx.respond = false;
    return;
  }
  if (isRefresh && faults.holdNextRefreshBeforeCommit) {
    faults.holdNextRefreshBeforeCommit = false;
    counters.held++;
    await new Promise((r) => { releaseHeld = r; }); // nothing rotated yet; the test kills the client, then releases
    if (ctx.req.socket.destroyed) {
      counters.dropped++; // the client is gone: abandon the request before the grant is touched
      ctx.respond = false;
      return;
    }
  }
  await next();
  if (ctx.status === 200 && ctx.oidc?.params?.grant_type === 'refresh_token') {
    if (faults.slowRefreshAnswers > 0) {
      faults.slowRefreshAnswers--;
      counters.slowed++;
      await new Promise((r) => setTimeout(r, Number(faults.slowAnswerMs) || 0)); // issued now, answered later
    }
    if (faults.dropNextRefresh) {
      faults.dropNextRefresh = false;
      counters.dropped++;
      ctx.req.socket.destroy(); // rotation committed, response lost
      ctx.respond = false;
    } else if (faults.holdNextRefresh) {
      faults.holdNextRefresh = false;
      counters.held++;
      await new Promise((r) => { releaseHeld = r; }); // committed; the answer waits until the test releases it
      ctx.req.socket.destroy();
      ctx.respond = false;
    }
  }
});

// Lies, told after the real answer is built: rewrite discovery bodies and the authorization redirect.
provider.use(async (ctx, next) => {
  await next();
  const lie = faults.lie;
  if (!lie) return;
  if (ctx.path.startsWith('/.well-known/') && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
    switch (lie) {
      case 'issuer': ctx.body = { ...ctx.body, issuer: 'https://as.elsewhere.example' }; break;
      case 'no_s256': ctx.body = { ...ctx.body, code_challenge_methods_supported: ['plain'] }; break;
      case 'http_endpoint': ctx.body = { ...ctx.body, token_endpoint: 'http://as.elsewhere.example/token' }; break;
      case 'invalid_json': ctx.type = 'application/json'; ctx.body = `{"issuer": "${issuer}", "token_endpoint": `; break;
      case 'oversized': ctx.body = { ...ctx.body, padding: 'x'.repeat(70 * 1024) }; break;
      default: break;
    }
  }
  const location = ctx.response.get('Location');
  if (location && /[?&]code=/.test(location) && location.includes('/callback')) {
    const url = new URL(location);
    switch (lie) {
      case 'state_wrong': url.searchParams.set('state', 'forged-state'); break;
      case 'iss_wrong': url.searchParams.set('iss', 'https://as.elsewhere.example'); break;
      case 'iss_missing': url.searchParams.delete('iss'); break;
      default: break;
    }
    ctx.set('Location', url.href);
  }
});

async function peekRefresh(ctx) {
  // Read the form once; the provider's body parser then takes the buffered bytes from req.body.
  const chunks = [];
  for await (const c of ctx.req) chunks.push(c);
  const raw = Buffer.concat(chunks);
  ctx.req.body = raw;
  return new URLSearchParams(raw.toString('utf8')).get('grant_type') === 'refresh_token';
}

async function autoInteraction(req, res, next) {
  try {
    const { prompt, params, session, grantId } = await provider.interactionDetails(req, res);
    if (prompt.name === 'login') {
      const accountId = typeof params.login_hint === 'string' ? params.login_hint : faults.user;
      return await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
    }
    const grant = grantId ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [ind, s] of Object.entries(d.missingResourceScopes ?? {})) grant.addResourceScope(ind, s.join(' '));
    const id = await grant.save();
    return await provider.interactionFinished(req, res, { consent: grantId ? {} : { grantId: id } }, { mergeWithLastSubmission: true });
  } catch (e) { next(e); }
}

// The protected-resource stub: enough of an MCP server for discovery (RFC 9728).
const prmPath = '/.well-known/oauth-protected-resource/mcp';
app.get('/mcp', (req, res) => {
  res.set('WWW-Authenticate', `Bearer resource_metadata="${base}${prmPath}", scope="mcp:tools"`);
  res.status(401).json({ error: 'invalid_token' });
});
app.get(prmPath, (req, res) => {
  res.json({
    resource: faults.lie === 'prm_resource' ? `${base}/other` : ownResource,
    authorization_servers: [issuer],
    scopes_supported: ['mcp:tools'],
    resource_name: 'latchkey-test-resource',
  });
});

if (env.RFC8414_ALIAS === '1' && mount) {
  app.get(`/.well-known/oauth-authorization-server${mount}`, async (req, res) => {
    const r = await fetch(`${issuer}/.well-known/oauth-authorization-server`, { headers: { 'user-agent': 'latchkey-peer-self' } });
    res.status(r.status).type('application/json').send(await r.text());
  });
}

app.get('/__test/counters', (req, res) => res.json(counters));
app.post('/__test/counters/reset', (req, res) => {
  Object.assign(counters, { refresh: 0, refreshError: 0, revoked: 0, tokenRequests: 0, refreshRequests: 0, held: 0, dropped: 0, slowed: 0, byGrant: {}, byGrantType: {}, errors: {}, wellKnown: {} });
  res.json(counters);
});
app.post('/__test/faults', express.json(), (req, res) => {
  const { release, ...rest } = req.body ?? {};
  Object.assign(faults, rest);
  if (release) releaseHeld();
  res.json(faults);
});

let localJwks;
app.post('/__test/introspect', express.json(), async (req, res, next) => {
  try {
    const token = String(req.body?.token ?? '');
    if (token.split('.').length === 3) {
      localJwks ??= createLocalJWKSet(await (await fetch(`${issuer}/jwks`)).json());
      try {
        const { payload, protectedHeader } = await jwtVerify(token, localJwks, { issuer });
        return res.json({ active: true, kind: 'jwt', typ: protectedHeader.typ, ...payload });
      } catch (e) {
        return res.json({ active: false, kind: 'jwt', problem: e.code ?? e.message, ...decodeJwt(token) });
      }
    }
    for (const model of ['RefreshToken', 'AccessToken', 'ClientCredentials']) {
      const found = await provider[model].find(token, { ignoreExpiration: true });
      if (found) {
        const grant = found.grantId ? await provider.Grant.find(found.grantId) : undefined;
        const grantAlive = found.grantId ? !!grant : true;
        return res.json({
          active: !found.consumed && !found.isExpired && grantAlive,
          kind: model, consumed: !!found.consumed, expired: !!found.isExpired, grantAlive,
          grantId: found.grantId, client_id: found.clientId, sub: found.accountId,
        });
      }
    }
    return res.json({ active: false, kind: 'unknown' });
  } catch (e) { next(e); }
});

app.get(`${mount}/interaction/:uid`, autoInteraction);
if (mount) app.use(mount, provider.callback()); else app.use(provider.callback());

process.on('SIGTERM', () => process.exit(0));
console.log(JSON.stringify({ ready: true, issuer, base, resource: ownResource }));
