// The driver of bench/mcp-latency.sh: one MCP client per leg, all in this process and all the same client (npm
// @modelcontextprotocol/sdk's Client, the version pinned in tests/peers), connected before anything is timed. Then
// ROUNDS rounds; in each, every leg makes PER_ROUND sequential tools/call echo {"text":"ping"} round trips, the
// order of the legs changing every round (a balanced Latin square: each leg is first, second, … equally often and
// follows each other leg equally often), so load that comes and goes on the machine falls on every leg alike.
// Only the callTool round trip is timed (process.hrtime), never initialize, tools/list or a process start.
//
// Environment (set by bench/mcp-latency.sh):
//   PEERS      tests/peers (where the SDK is installed)
//   LEGS       JSON [{"name", "http": URL, "auth": ENVVAR} | {"name", "stdio": [CMD, ARG…], "env": {CHILD: ENVVAR}}, …]
//              the first leg is the baseline ("direct"). Secrets are never in LEGS: "auth" and "env" name variables of
//              this process that hold them (an HTTP leg sends "Authorization: <$ENVVAR>"; a stdio leg's child gets
//              CHILD=<$ENVVAR> in its environment). Those variables are not passed on to any child otherwise.
//   ROUNDS, PER_ROUND, WARMUP (calls per leg before timing, also alternated)
//   REFERENCE  the legs (comma-separated names) the others' added time is compared with (mcp-remote)
//   LOGDIR     each stdio child's standard error goes to LOGDIR/NAME.err; the figures also to LOGDIR/result.json
// Prints a Markdown table: per leg the calls timed, p50 (the median), p90 and p99 in ms; the added time, median(leg)
// − median(first leg); and added(leg) ÷ added(each REFERENCE leg). The 95 % intervals come from a bootstrap over rounds.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = process.env;
const sdk = (p) => import(pathToFileURL(path.join(env.PEERS, 'node_modules/@modelcontextprotocol/sdk/dist/esm', p)).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { StdioClientTransport } = await sdk('client/stdio.js');

const legs = JSON.parse(env.LEGS);
const rounds = Number(env.ROUNDS ?? 200);
const perRound = Number(env.PER_ROUND ?? 1);
const warmup = Number(env.WARMUP ?? 10);
const secretVars = new Set(legs.flatMap((l) => [l.auth, ...Object.values(l.env ?? {})]).filter(Boolean));
const childEnv = Object.fromEntries(Object.entries(env).filter(([k]) => !secretVars.has(k)));
const args = { text: 'ping' };

for (const leg of legs) {
  let transport;
  if (leg.http) {
    const headers = leg.auth ? { Authorization: env[leg.auth] } : {};
    transport = new StreamableHTTPClientTransport(new URL(leg.http), { requestInit: { headers } });
  } else {
    const extra = Object.fromEntries(Object.entries(leg.env ?? {}).map(([k, v]) => [k, env[v]]));
    const [command, ...rest] = leg.stdio;
    transport = new StdioClientTransport({ command, args: rest, env: { ...childEnv, ...extra }, stderr: 'pipe', cwd: leg.cwd });
    const log = fs.createWriteStream(path.join(env.LOGDIR, `${leg.name}.err`), { mode: 0o600 });
    transport.stderr?.pipe(log);
  }
  leg.transport = transport;
  leg.client = new Client({ name: 'latchkey-bench', version: '0.0.1' });
  await leg.client.connect(transport); // initialize + notifications/initialized: not timed
  const tools = (await leg.client.listTools()).tools.map((t) => t.name);
  if (!tools.includes('echo')) throw new Error(`${leg.name}: no echo tool (tools: ${tools.join(', ')})`);
  leg.samples = [];
  leg.byRound = [];
  leg.failed = 0;
}

// Williams design for n legs: row 0 is 0, 1, n−1, 2, n−2, …; row r adds r (mod n); for odd n the n rows are
// followed by the same rows reversed. Over one cycle (n rows, 2n for odd n) every leg is in every position equally
// often and follows every other leg equally often.
const n = legs.length;
const first = [0];
for (let i = 1, lo = 1, hi = n - 1; i < n; i++) first.push(i % 2 ? lo++ : hi--);
const orderOf = (r) => {
  const row = first.map((x) => (x + r) % n);
  return n % 2 && r % (2 * n) >= n ? row.reverse() : row;
};

async function call(leg) {
  const t0 = process.hrtime.bigint();
  const r = await leg.client.callTool({ name: 'echo', arguments: args }, undefined, { timeout: 60000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.isError || r.content?.[0]?.text !== args.text) throw new Error(`${leg.name}: unexpected answer ${JSON.stringify(r).slice(0, 200)}`);
  return ms;
}

for (let r = 0; r < warmup; r++) for (const i of orderOf(r)) await call(legs[i]);
const started = Date.now();
for (let r = 0; r < rounds; r++) {
  for (const i of orderOf(r)) {
    const leg = legs[i];
    const mine = [];
    for (let k = 0; k < perRound; k++) {
      try {
        mine.push(await call(leg));
      } catch (e) {
        leg.failed++;
        if (leg.failed === 1) console.error(`${leg.name}: ${String(e.message ?? e).slice(0, 300)}`);
      }
    }
    leg.samples.push(...mine);
    leg.byRound.push(mine);
  }
}
const seconds = (Date.now() - started) / 1000;

for (const leg of legs) {
  await leg.client.close().catch(() => {});
}

const sorted = (xs) => [...xs].sort((a, b) => a - b);
// Nearest rank: the smallest sample with at least p of the samples at or below it.
const pct = (s, p) => s[Math.max(0, Math.ceil(p * s.length) - 1)];
const median = (s) => (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2);

// Bootstrap over rounds (the same resampled rounds for every leg, so drifting load stays paired): 95 % intervals of
// each leg's added time and of its ratio to the reference leg's added time.
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const refs = (env.REFERENCE ?? '').split(',').filter(Boolean).map((name) => legs.findIndex((l) => l.name === name)).filter((i) => i > 0);
const added = legs.map(() => []);
const ratio = legs.map(() => refs.map(() => []));
for (let b = 0; b < 1000; b++) {
  const pick = Array.from({ length: rounds }, () => Math.floor(rand() * rounds));
  const med = legs.map((leg) => median(sorted(pick.flatMap((r) => leg.byRound[r]))));
  legs.forEach((_, i) => {
    added[i].push(med[i] - med[0]);
    refs.forEach((ref, j) => ratio[i][j].push((med[i] - med[0]) / (med[ref] - med[0])));
  });
}
const ci = (xs) => { const s = sorted(xs.filter(Number.isFinite)); return s.length ? [pct(s, 0.025), pct(s, 0.975)] : [NaN, NaN]; };

const out = { rounds, perRound, warmup, seconds, references: refs.map((i) => legs[i].name), legs: [] };
for (const [i, leg] of legs.entries()) {
  const s = sorted(leg.samples);
  out.legs.push({
    name: leg.name, label: leg.label ?? leg.name, n: s.length, failed: leg.failed,
    p50: median(s), p90: pct(s, 0.9), p99: pct(s, 0.99), mean: s.reduce((a, b) => a + b, 0) / s.length, max: s[s.length - 1],
    addedCi: ci(added[i]), ratioCi: refs.map((_, j) => ci(ratio[i][j])),
  });
}
const base = out.legs[0];
for (const l of out.legs) l.added = l.p50 - base.p50;
for (const l of out.legs) l.ratio = refs.map((ref) => l.added / out.legs[ref].added);
fs.writeFileSync(path.join(env.LOGDIR, 'result.json'), JSON.stringify(out, null, 1), { mode: 0o600 });

const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const range = ([a, b]) => `${f(a)} … ${f(b)}`;
const lines = [
  `| leg (${rounds} rounds × ${perRound} call${perRound > 1 ? 's' : ''} per leg, order alternated every round) | calls | p50 ms | p90 ms | p99 ms | added = p50 − direct p50, ms (95 % CI) |${refs.map((r) => ` added ÷ ${legs[r].name}'s added (95 % CI) |`).join('')}`,
  `|---|---|---|---|---|---|${refs.map(() => '---|').join('')}`,
];
for (const [i, l] of out.legs.entries()) {
  const addedCell = i === 0 ? '(baseline)' : `${f(l.added)} (${range(l.addedCi)})`;
  const ratioCells = refs.map((ref, j) => (i === 0 || i === ref ? '' : `${f(l.ratio[j])} (${range(l.ratioCi[j])})`));
  lines.push(`| ${l.label} | ${l.n}${l.failed ? ` (+${l.failed} failed)` : ''} | ${f(l.p50)} | ${f(l.p90)} | ${f(l.p99)} | ${addedCell} |${ratioCells.map((c) => ` ${c} |`).join('')}`);
}
console.log(lines.join('\n'));
process.exit(0);
