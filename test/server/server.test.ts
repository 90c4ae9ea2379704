/**
 * `mac-lm serve` as a real HTTP server on loopback (fastify listening on 127.0.0.1, requests through fetch), over
 * the tiny MAC: documents in and out, validation and limits, the bearer token, answers as JSON and as server-sent
 * events, the writer queue batching concurrent additions while asks run, /metrics, /openapi.json and the web page.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Mac } from "../../src/api/mac.js";
import { type RunningServer, serve } from "../../src/server/serve.js";
import { TINY_EXAMPLES, tinyMac } from "../mac/tiny-mac.js";

const dir = mkdtempSync(join(tmpdir(), "mac-serve-"));
const TOKEN = "s3cret-token";
let server: RunningServer;
let mac: Mac;
let base: string;

beforeAll(async () => {
  mac = Mac.fromModel(tinyMac({ seed: 3 }), { bank: join(dir, "bank"), ownsModel: true });
  server = await serve(mac, {
    port: 0,
    host: "127.0.0.1",
    token: TOKEN,
    handleSignals: false,
    limits: { maxBatch: 8, maxDocumentChars: 300, maxQuestionChars: 40, maxNewTokens: 6, bodyLimitBytes: 16_384 },
    defaultMaxNewTokens: 4,
    writerLingerMs: 30, // the tiny amortizer is so fast that requests would not otherwise overlap
    log: () => {},
  });
  base = server.url;
});
afterAll(async () => {
  await server.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

const auth = { authorization: `Bearer ${TOKEN}` };
async function call(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = auth,
): Promise<{ status: number; json: Record<string, unknown>; text: string; type: string | null }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* not JSON (metrics, the page) */
  }
  return { status: res.status, json, text, type: res.headers.get("content-type") };
}
const errorOf = (r: { json: Record<string, unknown> }): { code: string; message: string } =>
  r.json.error as { code: string; message: string };

const DOCS = TINY_EXAMPLES.map((e) => ({ id: e.docId, text: e.document, title: `about ${e.docId}` }));

describe("mac-lm serve", () => {
  it("serves health, the OpenAPI document and the web page", async () => {
    const h = await call("GET", "/healthz");
    expect(h.status).toBe(200);
    expect(h.json).toMatchObject({ ok: true, documents: 0, entries: 0 });
    const o = await call("GET", "/openapi.json");
    expect(o.json.openapi).toBe("3.1.0");
    expect(Object.keys(o.json.paths as object)).toEqual(
      expect.arrayContaining(["/v1/documents", "/v1/documents/{id}", "/v1/ask", "/healthz", "/metrics"]),
    );
    const askSchema = (
      o.json.paths as Record<
        string,
        {
          post: {
            requestBody: {
              content: Record<string, { schema: { properties: Record<string, { maxLength?: number }> } }>;
            };
          };
        }
      >
    )["/v1/ask"]!.post.requestBody.content["application/json"]!.schema;
    expect(askSchema.properties.question!.maxLength).toBe(40);
    const page = await call("GET", "/");
    expect(page.type).toMatch(/text\/html/);
    expect(page.text).toContain('<script src="/app.js"');
    expect((await call("GET", "/app.js")).type).toMatch(/javascript/);
    expect((await call("GET", "/style.css")).type).toMatch(/css/);
    const missing = await call("GET", "/nope");
    expect(missing.status).toBe(404);
    expect(errorOf(missing).code).toBe("MACLM_NOT_FOUND");
  });

  it("adds, lists, reads, replaces and deletes documents; writes need the token", async () => {
    const noAuth = await call("POST", "/v1/documents", { documents: DOCS.slice(0, 1) }, {});
    expect(noAuth.status).toBe(401);
    expect(errorOf(noAuth).message).toContain("Bearer");
    expect(
      (await call("POST", "/v1/documents", { documents: DOCS.slice(0, 1) }, { authorization: "Bearer wrong" })).status,
    ).toBe(401);

    const add = await call("POST", "/v1/documents", { documents: DOCS });
    expect(add.status, add.text).toBe(200);
    expect(add.json).toEqual({ added: DOCS.map((d) => d.id), replaced: [], documents: 6 });
    const list = await call("GET", "/v1/documents", undefined, {});
    expect(
      (list.json.documents as { id: string; title: string; chars: number }[]).map((d) => [d.id, d.title, d.chars]),
    ).toEqual(DOCS.map((d) => [d.id, d.title, d.text.length]));
    const one = await call("GET", "/v1/documents/d1", undefined, {});
    expect(one.json).toMatchObject({ id: "d1", text: DOCS[1]!.text, entries: 1 });
    const again = await call("POST", "/v1/documents", { documents: [{ id: "d1", text: "quent is a tailor." }] });
    expect(again.json).toMatchObject({ added: [], replaced: ["d1"], documents: 6 });
    expect((await call("GET", "/v1/documents/d1", undefined, {})).json.text).toBe("quent is a tailor.");

    expect((await call("DELETE", "/v1/documents/d5", undefined, {})).status).toBe(401);
    const del = await call("DELETE", "/v1/documents/d5");
    expect(del.json).toEqual({ id: "d5", removed: true });
    const gone = await call("DELETE", "/v1/documents/d5");
    expect(gone.status).toBe(404);
    expect(errorOf(gone).message).toContain('"d5"');
    expect((await call("GET", "/v1/documents/d5", undefined, {})).status).toBe(404);
    expect(mac.stats().documents).toBe(5);
  });

  it("rejects bad requests with 4xx errors that name the problem", async () => {
    const bad = async (body: unknown, status: number, ...parts: string[]): Promise<void> => {
      const r = await call("POST", "/v1/documents", body);
      expect(r.status, r.text).toBe(status);
      for (const p of parts) expect(errorOf(r).message).toContain(p);
    };
    await bad({}, 400, "documents");
    await bad({ documents: [] }, 400, "documents");
    await bad({ documents: [{ id: "x", text: "y".repeat(301) }] }, 400, "documents.0.text", "300");
    await bad({ documents: [{ id: "x", text: "   " }] }, 400, "documents.0.text", "empty");
    await bad({ documents: [{ id: "a b", text: "t" }] }, 400, "documents.0.id");
    await bad({ documents: [{ id: "x", text: "t", extra: 1 }] }, 400, "extra");
    await bad({ documents: Array.from({ length: 9 }, (_, i) => ({ id: `b${i}`, text: "t" })) }, 400, "documents", "8");
    await bad(
      {
        documents: [
          { id: "x", text: "t" },
          { id: "x", text: "u" },
        ],
      },
      400,
      "unique",
    );
    await bad({ documents: [{ id: "x", text: "t", meta: [1] }] }, 400, "documents.0.meta");
    await bad(`{"documents": [`, 400);
    const big = await call("POST", "/v1/documents", { documents: [{ id: "x", text: "z".repeat(20_000) }] });
    expect(big.status).toBe(413);
    const ask = async (body: unknown, ...parts: string[]): Promise<void> => {
      const r = await call("POST", "/v1/ask", body, {});
      expect(r.status, r.text).toBe(400);
      for (const p of parts) expect(errorOf(r).message).toContain(p);
    };
    await ask({}, "question");
    await ask({ question: "q".repeat(41) }, "question", "40");
    await ask({ question: "where?", maxNewTokens: 7 }, "maxNewTokens");
    await ask({ question: "where?", hierarchical: 1 }, "hierarchical");
    await ask({ question: "where?", memory: "yes" }, "memory");
    expect(mac.documents().some((d) => d.id === "x")).toBe(false);
  });

  it("answers as the library does, as JSON and as server-sent events, with and without memory", async () => {
    const q = "where does zorva live?";
    const direct = await mac.ask(q, { maxNewTokens: 4 });
    const r = await call("POST", "/v1/ask", { question: q }, {});
    expect(r.status, r.text).toBe(200);
    expect(r.json.answer).toBe(direct.answer);
    expect((r.json.sources as { id: string }[]).map((s) => s.id)).toEqual(direct.sources.map((s) => s.id));
    expect(r.json.memory).toEqual({ documents: 5, entries: 5 });
    const none = await call("POST", "/v1/ask", { question: q, memory: false }, {});
    expect(none.json.answer).toBe((await mac.ask(q, { maxNewTokens: 4, memory: false })).answer);
    expect(none.json.sources).toEqual([]);
    const hier = await call("POST", "/v1/ask", { question: q, hierarchical: 2, maxSources: 2 }, {});
    expect((hier.json.sources as unknown[]).length).toBe(2);

    const res = await fetch(`${base}/v1/ask`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ question: q, stream: true }),
    });
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const events = (await res.text())
      .split("\n\n")
      .filter(Boolean)
      .map((b) => ({
        event: /^event: (.*)$/m.exec(b)![1]!,
        data: JSON.parse(/^data: (.*)$/m.exec(b)![1]!) as Record<string, unknown>,
      }));
    const tokens = events.filter((e) => e.event === "token").map((e) => e.data.text as string);
    const done = events.at(-1)!;
    expect(done.event).toBe("done");
    expect(tokens.join("").trim()).toBe(direct.answer);
    expect(done.data.answer).toBe(direct.answer);
    expect((done.data.sources as { id: string }[]).map((s) => s.id)).toEqual(direct.sources.map((s) => s.id));
  });

  it("batches concurrent additions in the writer queue while asks run; /metrics counts it all", async () => {
    const before = server.writer.stats.batches;
    const adds = Array.from({ length: 12 }, (_, i) =>
      call("POST", "/v1/documents", { documents: [{ id: `c${i}`, text: `item ${i} is a kind of qorn.` }] }),
    );
    const asks = Array.from({ length: 4 }, () => call("POST", "/v1/ask", { question: "what is quent?" }, {}));
    const results = await Promise.all([...adds, ...asks]);
    for (const r of results) expect(r.status, r.text).toBe(200);
    const batches = server.writer.stats.batches - before;
    expect(batches).toBeLessThan(12);
    expect(server.writer.stats.maxBatchDocs).toBeGreaterThan(1);
    expect(mac.stats().documents).toBe(17);

    const m = await call("GET", "/metrics", undefined, {});
    expect(m.type).toMatch(/text\/plain/);
    expect(m.text).toMatch(/maclm_http_requests_total\{method="POST",route="\/v1\/documents",status="200"\} \d+/);
    expect(m.text).toMatch(/maclm_http_requests_total\{method="POST",route="\/v1\/documents",status="400"\} \d+/);
    expect(m.text).toMatch(/maclm_ask_duration_seconds_count\{memory="true"\} \d+/);
    expect(m.text).toContain("maclm_bank_documents 17");
    expect(m.text).toMatch(/maclm_writer_batches_total \d+/);
    expect(m.text).toMatch(/process_resident_memory_bytes \d+/);
  });
});
