/**
 * What the server accepts: request bodies as zod schemas with limits. Every limit is a ServeLimits field, so a
 * deployment can change it (`mac-lm serve --max-…`); a request over a limit gets a 400 naming the field and the limit
 * (413 for a body over bodyLimitBytes, refused by fastify before it is parsed).
 */
import { z } from "zod";

export interface ServeLimits {
  /** Largest request body (bytes). */
  bodyLimitBytes: number;
  /** Documents per POST /v1/documents. */
  maxBatch: number;
  /** Characters per document text. */
  maxDocumentChars: number;
  /** Characters per question. */
  maxQuestionChars: number;
  /** Generated tokens per answer at most. */
  maxNewTokens: number;
}

export const DEFAULT_LIMITS: Readonly<ServeLimits> = Object.freeze({
  bodyLimitBytes: 8 * 1024 * 1024,
  maxBatch: 64,
  maxDocumentChars: 100_000,
  maxQuestionChars: 2_000,
  maxNewTokens: 64,
});

const ID = /^[\p{L}\p{N}._:@/+-]+$/u;

export function documentsBody(l: ServeLimits) {
  const doc = z.strictObject({
    id: z.string().min(1).max(256).regex(ID, "id: letters, digits and . _ : @ / + - only (it appears in URLs)"),
    text: z
      .string()
      .max(l.maxDocumentChars)
      .refine((t) => t.trim().length > 0, "text is empty"),
    title: z.string().max(512).optional(),
    meta: z.record(z.string(), z.json()).optional(),
  });
  return z.strictObject({
    documents: z
      .array(doc)
      .min(1)
      .max(l.maxBatch)
      .refine((ds) => new Set(ds.map((d) => d.id)).size === ds.length, "document ids must be unique within a request"),
  });
}

export function askBody(l: ServeLimits) {
  return z.strictObject({
    question: z
      .string()
      .max(l.maxQuestionChars)
      .refine((q) => q.trim().length > 0, "question is empty"),
    memory: z.boolean().optional(),
    hierarchical: z.union([z.boolean(), z.int().min(2).max(1_000_000)]).optional(),
    stream: z.boolean().optional(),
    maxNewTokens: z.int().min(1).max(l.maxNewTokens).optional(),
    maxSources: z.int().min(0).max(50).optional(),
  });
}

export type DocumentsBody = z.infer<ReturnType<typeof documentsBody>>;
export type AskBody = z.infer<ReturnType<typeof askBody>>;

/** "documents.0.text: Too big: expected string to have <=100000 characters; …" */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 10)
    .map((i) => `${i.path.length > 0 ? i.path.join(".") : "body"}: ${i.message}`)
    .join("; ");
}
