// The driver of bench/mcp-startup.sh: how long an MCP client waits from spawning a stdio server to the answer of
// its first tools/call. Each sample is one whole life: spawn the command, initialize, tools/call echo
// {"text":"ping"}, close. The client is npm @modelcontextprotocol/sdk's Client (the version pinned in tests/peers),
// as an MCP client host would use it. Rounds alternate the legs' order (rotated every round), so load that comes and
// goes falls on every leg alike.
//
// Environment (set by bench/mcp-startup.sh):
//   PEERS    tests/peers (where the SDK is installed)
//   LEGS     JSON [{"name", "label", "stdio": [CMD, ARG…], "cwd"?, "env"?: {CHILD: ENVVAR}}, …]; secrets are never in
//            LEGS: "env" names variables of this process whose values the child gets, and no other child sees them
//   ROUNDS, WARMUP, REFERENCE (the leg the others are divided by), LOGDIR (each leg's stderr, result.json)
// Prints a Markdown table: per leg the samples, p50 (the median), p90 and max in ms, and p50 ÷ the reference's p50.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = process.env;
const sdk = (p) => import(pathToFileURL(path.join(env.PEERS, 'node_modules/@modelcontextprotocol/sdk/dist/esm', p)).href);
const { Client } = await sdk('client/index.js');
const { StdioClientTransport } = await sdk('client/stdio.js');

const legs = JSON.parse(env.LEGS);
const rounds = Number(env.ROUNDS ?? 20);
const warmup = Number(env.WARMUP ?? 2);
const secretVars = new Set(legs.flatMap((l) => Object.values(l.env ?? {})));
const childEnv = Object.fromEntries(Object.entries(env).filter(([k]) => !secretVars.has(k)));
const args = { text: 'ping' };
for (const leg of legs) {
  leg.samples = [];
  leg.log = fs.createWriteStream(path.join(env.LOGDIR, `${leg.name}.err`), { mode: 0o600 });
}

async function life(leg) {
  const extra = Object.fromEntries(Object.entries(leg.env ?? {}).map(([k, v]) => [k, env[v]]));
  const [command, ...rest] = leg.stdio;
  const t0 = process.hrtime.bigint();
  const transport = new StdioClientTransport({ command, args: rest, env: { ...childEnv, ...extra }, stderr: 'pipe', cwd: leg.cwd });
  transport.stderr?.pipe(leg.log, { end: false });
  const client = new Client({ name: 'latchkey-bench', version: '0.0.1' });
  try {
    await client.connect(transport);
    const r = await client.callTool({ name: 'echo', arguments: args }, undefined, { timeout: 60000 });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.isError || r.content?.[0]?.text !== args.text) throw new Error(`${leg.name}: unexpected answer ${JSON.stringify(r).slice(0, 200)}`);
    return ms;
  } finally {
    await client.close().catch(() => {});
  }
}

const n = legs.length;
for (let r = 0; r < warmup; r++) for (const leg of legs) await life(leg);
for (let r = 0; r < rounds; r++) {
  for (let k = 0; k < n; k++) {
    const leg = legs[(r + k) % n];
    leg.samples.push(await life(leg));
  }
}

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const pct = (s, p) => s[Math.max(0, Math.ceil(p * s.length) - 1)];
const median = (s) => (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2);
const ref = legs.find((l) => l.name === env.REFERENCE);
const refMedian = ref ? median(sorted(ref.samples)) : NaN;
const out = legs.map((l) => {
  const s = sorted(l.samples);
  return { name: l.name, label: l.label ?? l.name, n: s.length, p50: median(s), p90: pct(s, 0.9), max: s[s.length - 1], ratio: median(s) / refMedian };
});
fs.writeFileSync(path.join(env.LOGDIR, 'result.json'), JSON.stringify({ rounds, warmup, reference: env.REFERENCE, legs: out }, null, 1), { mode: 0o600 });
const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const lines = [
  `| spawn → initialize → first tools/call answer (${rounds} lives per leg, order rotated every round) | lives | p50 ms | p90 ms | max ms | p50 ÷ ${ref?.label ?? 'reference'} |`,
  '|---|---:|---:|---:|---:|---:|',
  ...out.map((l) => `| ${l.label} | ${l.n} | ${f(l.p50)} | ${f(l.p90)} | ${f(l.max)} | ${l.name === env.REFERENCE ? '1' : l.ratio.toFixed(2)} |`),
];
console.log(lines.join('\n'));
process.exit(0);
