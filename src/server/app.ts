/**
 * The HTTP server (`mac-lm serve`): a thin layer over the library's Mac. Routes:
 *
 *   POST   /v1/documents      { documents: [{ id, text, title?, meta? }] } → 200 { added, replaced } once durable
 *   GET    /v1/documents      → { documents: [{ id, title, chars, entries, addedAt, meta }] }
 *   GET    /v1/documents/:id  → the document with its text
 *   DELETE /v1/documents/:id  → 200 { id, removed: true } once durable, 404 if absent
 *   POST   /v1/ask            { question, memory?, hierarchical?, stream?, maxNewTokens?, maxSources? }
 *                             → { answer, sources, timings, memory }, or server-sent events with stream: true
 *                               (event "token" { text } per piece, then "done" with the whole result, or "error")
 *   GET    /healthz, /metrics (Prometheus text), /openapi.json, and the web page at /
 *
 * Writes (POST/DELETE documents) go through one WriterQueue and, with a token configured, need
 * `Authorization: Bearer <token>`. Errors are JSON { error: { code, message } } with a 4xx status for bad requests.
 */
import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { z } from "zod";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { AskOptions, Mac } from "../api/mac.js";
import { MacLmError } from "../errors.js";
import { type ServeLimits, DEFAULT_LIMITS, askBody, describeIssues, documentsBody } from "./limits.js";
import { Metrics } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import { WriterQueue } from "./writer.js";

export interface ServerOptions {
  /** Bearer token required for writes (none: writes are open, as fits a loopback-only server). */
  token?: string;
  limits?: Partial<ServeLimits>;
  /** Documents amortized together at most by one writer batch (default 64). */
  maxWriterBatch?: number;
  /** Documents per amortizer forward pass (default 8). */
  adaptBatchSize?: number;
  /** Log requests (fastify's logger) (default false). */
  logger?: boolean;
}

export interface MacServer {
  app: FastifyInstance;
  writer: WriterQueue;
  metrics: Metrics;
  /** Stops taking requests, lets in-flight ones (and queued writes) finish; does not close the Mac. */
  drain(): Promise<void>;
}

const WEB = new URL("../../web/", import.meta.url);
const WEB_FILES: Record<string, string> = {
  "/": "index.html",
  "/app.js": "app.js",
  "/style.css": "style.css",
};
const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const STATUS_OF: Partial<Record<string, number>> = {
  MACLM_BAD_ARGUMENT: 400,
  MACLM_DUPLICATE_ID: 400,
  MACLM_NOT_FOUND: 404,
  MACLM_ABORTED: 499,
  MACLM_DISPOSED: 503,
};

export function buildServer(mac: Mac, opts: ServerOptions = {}): MacServer {
  const limits: ServeLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const docsSchema = documentsBody(limits);
  const askSchema = askBody(limits);
  const metrics = new Metrics();
  const writer = new WriterQueue(mac, {
    maxBatchDocs: opts.maxWriterBatch ?? 64,
    adaptBatchSize: opts.adaptBatchSize ?? 8,
  });
  const token = opts.token ? Buffer.from(opts.token) : null;
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: limits.bodyLimitBytes, return503OnClosing: true });
  const web = new Map(
    Object.entries(WEB_FILES).map(([route, file]) => [
      route,
      { body: readFileSync(new URL(file, WEB)), type: CONTENT_TYPES[file.split(".").pop()!]! },
    ]),
  );
  let asking = 0;

  const parse = <S extends z.ZodType>(schema: S, body: unknown): z.infer<S> => {
    const r = schema.safeParse(body);
    if (!r.success) throw new HttpError(400, "MACLM_BAD_REQUEST", describeIssues(r.error));
    return r.data;
  };

  const authorize = (req: FastifyRequest): void => {
    if (!token) return;
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? "");
    const given = m ? Buffer.from(m[1]!) : null;
    if (!given || given.length !== token.length || !timingSafeEqual(given, token))
      throw new HttpError(
        401,
        "MACLM_UNAUTHORIZED",
        "writes need `Authorization: Bearer <token>` with the server's token",
      );
  };

  app.addHook("onResponse", (req, reply, done) => {
    metrics.request(req.method, req.routeOptions.url ?? "unmatched", reply.statusCode);
    done();
  });

  app.setErrorHandler((err: unknown, _req, reply) => {
    if (err instanceof HttpError)
      return reply.status(err.status).send({ error: { code: err.code, message: err.message } });
    if (err instanceof MacLmError)
      return reply.status(STATUS_OF[err.code] ?? 500).send({ error: { code: err.code, message: err.message } });
    const e = err as { statusCode?: number; code?: string; message?: string };
    if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500)
      // fastify's own: body too large (413), malformed JSON (400), wrong content type (415)…
      return reply
        .status(e.statusCode)
        .send({ error: { code: e.code ?? "MACLM_BAD_REQUEST", message: e.message ?? "bad request" } });
    reply.log.error(err);
    return reply.status(500).send({ error: { code: "MACLM_INTERNAL", message: String(e.message ?? err) } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: "MACLM_NOT_FOUND", message: `no route ${req.method} ${req.url}` } }),
  );

  for (const [route, file] of web)
    app.get(route, (_req, reply) => reply.header("content-type", file.type).send(file.body));

  app.get("/healthz", () => ({ ok: true, ...mac.stats(), writerQueue: writer.depth, asking }));

  app.get("/openapi.json", () => openApiDocument(limits));

  app.get("/metrics", (_req, reply) => {
    const { documents, entries } = mac.stats();
    const mem = process.memoryUsage();
    reply.header("content-type", "text/plain; version=0.0.4; charset=utf-8");
    return metrics.render({
      maclm_bank_documents: { help: "Documents in the memory bank.", value: documents },
      maclm_bank_entries: { help: "Memory entries in the bank.", value: entries },
      maclm_writer_queue_depth: { help: "Documents and removals waiting for the writer.", value: writer.depth },
      maclm_writer_batches_total: {
        help: "Amortization batches written.",
        value: writer.stats.batches,
        type: "counter",
      },
      maclm_documents_added_total: {
        help: "Documents amortized and stored.",
        value: writer.stats.documentsAdded,
        type: "counter",
      },
      maclm_documents_removed_total: {
        help: "Documents forgotten.",
        value: writer.stats.documentsRemoved,
        type: "counter",
      },
      maclm_asks_in_flight: { help: "Questions being answered now.", value: asking },
      process_resident_memory_bytes: { help: "Resident set size.", value: mem.rss },
    });
  });

  app.post("/v1/documents", async (req) => {
    authorize(req);
    const body = parse(docsSchema, req.body);
    const r = await writer.add(body.documents);
    return { added: r.added, replaced: r.replaced, documents: mac.stats().documents };
  });

  app.get("/v1/documents", () => ({ documents: mac.documents() }));

  app.get<{ Params: { id: string } }>("/v1/documents/:id", (req) => {
    const info = mac.bank.document(req.params.id);
    if (!info) throw new HttpError(404, "MACLM_NOT_FOUND", `no document "${req.params.id}"`);
    return { ...info, text: mac.documentText(req.params.id) };
  });

  app.delete<{ Params: { id: string } }>("/v1/documents/:id", async (req) => {
    authorize(req);
    const removed = await writer.remove(req.params.id);
    if (!removed) throw new HttpError(404, "MACLM_NOT_FOUND", `no document "${req.params.id}"`);
    return { id: req.params.id, removed: true };
  });

  app.post("/v1/ask", async (req, reply) => {
    const body = parse(askSchema, req.body);
    const memory = body.memory ?? true;
    const ac = new AbortController();
    const ask: AskOptions = {
      memory,
      hierarchical: body.hierarchical,
      maxNewTokens: body.maxNewTokens,
      maxSources: body.maxSources,
      signal: ac.signal,
    };
    const t0 = performance.now();
    asking++;
    try {
      if (!body.stream) {
        req.raw.once("close", () => {
          if (!reply.sent) ac.abort();
        });
        const r = await mac.ask(body.question, ask);
        metrics.ask(memory, (performance.now() - t0) / 1000);
        return r;
      }
      return await streamAnswer(mac, body.question, ask, ac, reply, metrics, () =>
        metrics.ask(memory, (performance.now() - t0) / 1000),
      );
    } finally {
      asking--;
    }
  });

  return {
    app,
    writer,
    metrics,
    async drain() {
      await app.close(); // stops accepting; waits for in-flight requests (their writes included)
      await writer.drain();
    },
  };
}

/** Server-sent events: "token" per piece, then "done" with the result (or "error"). */
async function streamAnswer(
  mac: Mac,
  question: string,
  ask: AskOptions,
  ac: AbortController,
  reply: FastifyReply,
  metrics: Metrics,
  done: () => void,
): Promise<FastifyReply> {
  const s = mac.stream(question, ask); // validation errors surface at the first step, still as a JSON error
  const it = s[Symbol.asyncIterator]();
  const first = await it.next();
  reply.hijack(); // from here the response is ours: fastify's hooks do not see it, so it is counted here
  metrics.request("POST", "/v1/ask", 200);
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  res.once("close", () => ac.abort());
  const send = (event: string, data: unknown): void => {
    if (!res.destroyed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  try {
    for (let r = first; !r.done; r = await it.next()) send("token", { text: r.value });
    send("done", await s.result);
    done();
  } catch (e) {
    const err = e as { code?: string; message?: string };
    send("error", { code: err.code ?? "MACLM_INTERNAL", message: err.message ?? String(e) });
  } finally {
    res.end();
  }
  return reply;
}
