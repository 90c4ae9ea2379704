/**
 * `npm run bench:serve -- [--json FILE] [--duration S] [--ask-connections N] [--ingest-connections N] [--tiny]`
 *
 * The server under load, on loopback only: `mac-lm serve` (a child process: the shipped checkpoint on SmolLM2, or
 * with --tiny the test's tiny MAC) is seeded with the demo's 8 paragraphs, then for a fixed duration asks
 * (POST /v1/ask, greedy, ≤ 8 new tokens, over the whole bank with sources) and ingestion (POST /v1/documents, one
 * new document per request, ids never repeated) run at the same time, each from its own autocannon client with a
 * fixed number of connections. Reports per kind the requests completed, latency percentiles (p50/p90/p99, ms),
 * errors (connection errors, timeouts, non-2xx), and the writer's batching from /metrics; --json writes it all.
 * Bounded: fixed duration and connections, a per-request timeout, the server killed at the end.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { spawnServer } from "../../test/server/spawn-server.js";

const { values: args } = parseArgs({
  options: {
    json: { type: "string" },
    duration: { type: "string", default: "60" },
    "ask-connections": { type: "string", default: "4" },
    "ingest-connections": { type: "string", default: "2" },
    tiny: { type: "boolean", default: false },
  },
});
const duration = Number(args.duration);
const root = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "mac-bench-serve-"));

const startServer = (): Promise<{ proc: ChildProcess; url: string }> =>
  spawnServer(join(dir, "bank"), { real: !args.tiny });

interface Demo {
  data: { paragraphs: { context: string; qas: { question: string }[] }[] }[];
}
const demo = JSON.parse(readFileSync(join(root, "examples", "squad-demo.json"), "utf8")) as Demo;
const paragraphs = demo.data.flatMap((a) => a.paragraphs);
// The tiny base LM has 32 positions: short questions.
const questions = args.tiny
  ? ["where does zorva live?", "what is quent?", "when was lumo born?"]
  : paragraphs.flatMap((p) => p.qas.map((q) => q.question));
const contexts = paragraphs.map((p) => p.context);

type Summary = ReturnType<typeof summarize>;
function summarize(r: autocannon.Result) {
  return {
    requests: r.requests.total,
    ok2xx: r["2xx"],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    latency_ms: {
      p50: r.latency.p50,
      p90: r.latency.p90,
      p99: r.latency.p99,
      mean: r.latency.mean,
      max: r.latency.max,
    },
    throughput_rps: r.requests.average,
  };
}

const { proc, url } = await startServer();
let result: Record<string, unknown> = {};
try {
  const seed = await fetch(`${url}/v1/documents`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ documents: contexts.map((text, i) => ({ id: `seed-${i}`, text })) }),
  });
  if (!seed.ok) throw new Error(`seeding failed: ${seed.status} ${await seed.text()}`);
  const maxNewTokens = args.tiny ? 4 : 8; // the tiny base LM has 32 positions
  const probe = await fetch(`${url}/v1/ask`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ question: questions[0], maxNewTokens, maxSources: 3 }),
  });
  if (!probe.ok) throw new Error(`a first ask failed: ${probe.status} ${await probe.text()}`);
  process.stderr.write(`bench:serve: ${url}, ${contexts.length} documents seeded; ${duration} s of asks + ingestion\n`);

  let q = 0;
  let n = 0;
  const asks = autocannon({
    url: `${url}/v1/ask`,
    connections: Number(args["ask-connections"]),
    duration,
    timeout: 120,
    requests: [
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        setupRequest: (req) => ({
          ...req,
          body: JSON.stringify({ question: questions[q++ % questions.length], maxNewTokens, maxSources: 3 }),
        }),
      },
    ],
  });
  const ingest = autocannon({
    url: `${url}/v1/documents`,
    connections: Number(args["ingest-connections"]),
    duration,
    timeout: 120,
    requests: [
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        setupRequest: (req) => {
          const i = n++;
          return {
            ...req,
            body: JSON.stringify({
              documents: [{ id: `load-${i}`, text: `${contexts[i % contexts.length]} (copy ${i})` }],
            }),
          };
        },
      },
    ],
  });
  const [a, g] = await Promise.all([asks, ingest]);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const metric = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1] ?? NaN);
  const health = (await (await fetch(`${url}/healthz`)).json()) as { documents: number };
  const ask: Summary = summarize(a);
  const ingestion: Summary = summarize(g);
  result = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    server: args.tiny
      ? "tiny MAC (test/server/tiny-server.ts)"
      : "mac-lm serve, checkpoints/mac-default (SmolLM2-135M-Instruct)",
    load: {
      duration_s: duration,
      ask_connections: Number(args["ask-connections"]),
      ingest_connections: Number(args["ingest-connections"]),
      ask: `POST /v1/ask, greedy, maxNewTokens ${args.tiny ? 4 : 8}, maxSources 3, full aggregation`,
      ingest: "POST /v1/documents, 1 new document (~700 characters) per request",
    },
    ask,
    ingestion,
    writer: {
      batches: metric("maclm_writer_batches_total"),
      documents_added: metric("maclm_documents_added_total"),
      mean_documents_per_batch: metric("maclm_documents_added_total") / metric("maclm_writer_batches_total"),
    },
    bank_documents_after: health.documents,
    server_rss_mb: Math.round(metric("process_resident_memory_bytes") / 2 ** 20),
  };
} finally {
  proc.kill("SIGTERM");
  await new Promise((r) => proc.once("exit", r));
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
if (args.json) writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
