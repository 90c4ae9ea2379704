/** `mac-lm serve`: the HTTP server (src/server) over a Mac loaded from a checkpoint and a bank folder. */
import { Mac } from "../../api/mac.js";
import { MacLmError } from "../../errors.js";
import { serve } from "../../server/serve.js";
import type { CliIO } from "../main.js";

export interface ServeCommandOptions {
  checkpoint: string;
  bank: string;
  port: number;
  host: string;
  token?: string;
  dtype: "float32" | "float16";
  maxBatch?: number;
  maxDocumentChars?: number;
  maxQuestionChars?: number;
  bodyLimit?: number;
  cache?: string;
}

export async function run(o: ServeCommandOptions, io: CliIO): Promise<void> {
  const token = o.token ?? process.env.MACLM_TOKEN;
  if (token !== undefined && token.length < 8)
    throw new MacLmError("MACLM_BAD_ARGUMENT", "serve: the token must be at least 8 characters");
  const mac = await Mac.load(o.checkpoint, { bank: o.bank, dtype: o.dtype, cacheDir: o.cache });
  const limits = {
    ...(o.maxBatch ? { maxBatch: o.maxBatch } : {}),
    ...(o.maxDocumentChars ? { maxDocumentChars: o.maxDocumentChars } : {}),
    ...(o.maxQuestionChars ? { maxQuestionChars: o.maxQuestionChars } : {}),
    ...(o.bodyLimit ? { bodyLimitBytes: o.bodyLimit } : {}),
  };
  try {
    await serve(mac, {
      port: o.port,
      host: o.host,
      limits,
      ...(token ? { token } : {}),
      log: (l) => io.stderr.write(`${l}\n`),
      onListening: (url) => {
        const { documents } = mac.stats();
        io.stdout.write(
          `mac-lm serve: listening on ${url} (bank ${o.bank}: ${documents} documents; writes ${token ? "need the bearer token" : "are open"})\n`,
        );
      },
    });
  } catch (e) {
    await mac.close();
    throw e;
  }
}
