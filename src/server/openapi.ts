/** /openapi.json: the server's API as OpenAPI 3.1, request bodies generated from the same zod schemas it validates with. */
import { z } from "zod";
import { type ServeLimits, askBody, documentsBody } from "./limits.js";

const error = {
  description: "An error",
  content: {
    "application/json": {
      schema: {
        type: "object",
        properties: {
          error: {
            type: "object",
            properties: { code: { type: "string" }, message: { type: "string" } },
            required: ["code", "message"],
          },
        },
      },
    },
  },
};

const json = (schema: object, description: string) => ({ description, content: { "application/json": { schema } } });

const source = {
  type: "object",
  properties: {
    id: { type: "string" },
    title: { type: ["string", "null"] },
    weight: { type: "number", description: "share of the aggregator's attention (0–1)" },
    snippet: { type: "string" },
  },
};
const askResult = {
  type: "object",
  properties: {
    answer: { type: "string" },
    sources: { type: "array", items: source },
    timings: {
      type: "object",
      properties: Object.fromEntries(
        ["encodeMs", "aggregateMs", "generateMs", "totalMs"].map((k) => [k, { type: "number" }]),
      ),
    },
    memory: { type: "object", properties: { documents: { type: "integer" }, entries: { type: "integer" } } },
  },
};
const documentInfo = {
  type: "object",
  properties: {
    id: { type: "string" },
    title: { type: ["string", "null"] },
    chars: { type: "integer" },
    entries: { type: "integer" },
    addedAt: { type: "string", format: "date-time" },
    meta: { type: ["object", "null"] },
  },
};
const bearer = [{ bearer: [] }];

export function openApiDocument(limits: ServeLimits): object {
  const body = (schema: z.ZodType) => ({
    required: true,
    content: { "application/json": { schema: z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) } },
  });
  const idParam = [{ name: "id", in: "path", required: true, schema: { type: "string" } }];
  return {
    openapi: "3.1.0",
    info: {
      title: "mac-lm",
      version: "0.1.0",
      description:
        "A frozen language model kept up to date with documents through a memory of amortized contexts (MAC). " +
        `Limits: body ≤ ${limits.bodyLimitBytes} bytes, ≤ ${limits.maxBatch} documents per request, ` +
        `≤ ${limits.maxDocumentChars} characters per document, ≤ ${limits.maxQuestionChars} per question.`,
    },
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
    paths: {
      "/v1/documents": {
        post: {
          summary:
            "Adapt to documents (acknowledged once their memory entries are durable; an existing id is replaced)",
          security: bearer,
          requestBody: body(documentsBody(limits)),
          responses: {
            200: json(
              {
                type: "object",
                properties: {
                  added: { type: "array", items: { type: "string" } },
                  replaced: { type: "array", items: { type: "string" } },
                  documents: { type: "integer" },
                },
              },
              "Stored",
            ),
            400: error,
            401: error,
            413: error,
          },
        },
        get: {
          summary: "List the documents",
          responses: {
            200: json(
              { type: "object", properties: { documents: { type: "array", items: documentInfo } } },
              "The documents",
            ),
          },
        },
      },
      "/v1/documents/{id}": {
        get: {
          summary: "One document with its text",
          parameters: idParam,
          responses: { 200: json(documentInfo, "The document (and `text`)"), 404: error },
        },
        delete: {
          summary: "Forget a document (its memory entry and text are removed durably)",
          security: bearer,
          parameters: idParam,
          responses: {
            200: json(
              { type: "object", properties: { id: { type: "string" }, removed: { type: "boolean" } } },
              "Removed",
            ),
            401: error,
            404: error,
          },
        },
      },
      "/v1/ask": {
        post: {
          summary: "Answer a question from the memory (or without it), with the documents it drew on",
          requestBody: body(askBody(limits)),
          responses: {
            200: {
              description:
                "The answer; with stream: true, text/event-stream: `token` events { text }, then `done` (the result) or `error`",
              content: {
                "application/json": { schema: askResult },
                "text/event-stream": { schema: { type: "string" } },
              },
            },
            400: error,
          },
        },
      },
      "/healthz": { get: { summary: "Liveness and bank size", responses: { 200: json({ type: "object" }, "OK") } } },
      "/metrics": {
        get: {
          summary: "Prometheus metrics",
          responses: {
            200: { description: "Prometheus text", content: { "text/plain": { schema: { type: "string" } } } },
          },
        },
      },
      "/openapi.json": { get: { summary: "This document", responses: { 200: json({ type: "object" }, "OpenAPI") } } },
    },
  };
}
