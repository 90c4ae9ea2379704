/**
 * Downloads from the Hugging Face hub (or any HTTP(S) server laid out like it).
 *
 *   GET <hub>/<repo>/resolve/<revision>/<file>     hub = $MACLM_HUB_URL or https://huggingface.co
 *
 * The body streams into `<dest>.partial`; an interrupted transfer is resumed with an HTTP Range request (by the
 * retry loop here, or by a later call that finds the .partial file). The finished file is checked, then renamed
 * to `<dest>` (atomic on one file system), so `<dest>` never holds a partial or unverified file:
 *  - against the sha256 the hub publishes for LFS files (`X-Linked-Etag` on the first response, or an `ETag`
 *    that is 64 hex digits), or a caller-supplied sha256;
 *  - else against the size (`X-Linked-Size`, `Content-Range` total or `Content-Length`).
 * A mismatch deletes the .partial file and throws MACLM_CHECKSUM_MISMATCH.
 *
 * Redirects (the hub sends LFS files to a CDN) are followed; an `Authorization` header ($HF_TOKEN) is sent only to
 * the hub's own host. Timeouts apply to inactivity (connecting, or a stalled body), not to the whole transfer.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat, truncate } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { dirname } from "node:path";
import { MacLmError } from "../errors.js";

export const DEFAULT_HUB_URL = "https://huggingface.co";

/** The hub's base URL: $MACLM_HUB_URL or https://huggingface.co (no trailing slash). */
export const hubBaseUrl = (): string => (process.env.MACLM_HUB_URL ?? DEFAULT_HUB_URL).replace(/\/+$/, "");

/** <hub>/<repo>/resolve/<revision>/<file>, with each path segment URL-encoded. */
export function hubFileUrl(repo: string, file: string, revision = "main", base = hubBaseUrl()): string {
  const enc = (s: string) => s.split("/").map(encodeURIComponent).join("/");
  return `${base}/${enc(repo)}/resolve/${encodeURIComponent(revision)}/${enc(file)}`;
}

export interface DownloadProgress {
  /** Bytes of the file on disk so far (resumed bytes included). */
  received: number;
  /** Total size, when the server says it. */
  total: number | null;
  /** Bytes that were already on disk when this transfer started (for rates). */
  resumedFrom: number;
}

export interface DownloadOptions {
  /** Expected sha256 (hex). Takes precedence over what the server says. */
  sha256?: string;
  /** Expected size in bytes, used when no sha256 is known. */
  size?: number;
  /** Extra request headers (sent only to the first host). */
  headers?: Record<string, string>;
  /** Inactivity timeout in ms (connect, headers, or a stalled body). Default 30 000. */
  timeoutMs?: number;
  /** How many times a dropped transfer is resumed within this call. Default 3. */
  retries?: number;
  onProgress?: (p: DownloadProgress) => void;
}

export interface DownloadResult {
  path: string;
  size: number;
  sha256: string;
  /** What the file was checked against. */
  verified: "sha256" | "size" | "none";
  /** Bytes reused from an earlier partial file (0 for a fresh download). */
  resumedFrom: number;
  /** Number of HTTP requests for the body (1 without interruptions). */
  requests: number;
}

/** A failed request: `status` is the HTTP status, or null for a connection error or a timeout. */
export class DownloadError extends MacLmError {
  readonly url: string;
  readonly status: number | null;
  constructor(url: string, status: number | null, message: string, options?: { cause?: unknown }) {
    super("MACLM_DOWNLOAD_FAILED", message, options);
    this.name = "DownloadError";
    this.url = url;
    this.status = status;
  }
}

interface Meta {
  /** sha256 published by the server for this file, when it has one. */
  sha256: string | null;
  /** File size the server states (x-linked-size, content-range total, content-length of a 200). */
  size: number | null;
}

const SHA256_RE = /^[0-9a-f]{64}$/;
const unquoteEtag = (v: string | undefined): string | null => {
  if (v === undefined) return null;
  const s = v.replace(/^W\//, "").replace(/^"|"$/g, "").toLowerCase();
  return s;
};

/** Collects what a response (possibly a redirect) says about the file. The first answer that says it wins. */
function absorbMeta(meta: Meta, res: http.IncomingMessage): void {
  const h = res.headers;
  const linked = unquoteEtag(h["x-linked-etag"] as string | undefined);
  if (meta.sha256 === null && linked !== null && SHA256_RE.test(linked)) meta.sha256 = linked;
  const etag = unquoteEtag(h.etag);
  if (meta.sha256 === null && etag !== null && SHA256_RE.test(etag)) meta.sha256 = etag;
  const linkedSize = Number(h["x-linked-size"]);
  if (meta.size === null && h["x-linked-size"] !== undefined && Number.isFinite(linkedSize)) meta.size = linkedSize;
}

const USER_AGENT = `mac-lm (node ${process.versions.node})`;

/**
 * Sends a GET and follows redirects. Resolves with the final response (body not consumed). Rejects with a
 * DownloadError for connection errors and timeouts.
 */
function get(
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
  meta: Meta,
  hops = 0,
): Promise<{ res: http.IncomingMessage; url: string }> {
  return new Promise((resolvePromise, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new DownloadError(url, null, `invalid URL: ${url}`));
      return;
    }
    const mod = u.protocol === "https:" ? https : u.protocol === "http:" ? http : null;
    if (mod === null) {
      reject(new DownloadError(url, null, `unsupported protocol ${u.protocol} in ${url}`));
      return;
    }
    const req = mod.get(
      u,
      { headers: { "user-agent": USER_AGENT, "accept-encoding": "identity", ...headers }, timeout: timeoutMs },
      (res) => {
        const status = res.statusCode ?? 0;
        absorbMeta(meta, res);
        if (status >= 300 && status < 400 && res.headers.location !== undefined) {
          res.resume();
          if (hops >= 10) {
            reject(new DownloadError(url, status, `too many redirects fetching ${url}`));
            return;
          }
          const next = new URL(res.headers.location, u);
          // Credentials stay with the host they were meant for.
          const nextHeaders = { ...headers };
          if (next.host !== u.host) delete nextHeaders.authorization;
          get(next.toString(), nextHeaders, timeoutMs, meta, hops + 1).then(resolvePromise, reject);
          return;
        }
        // From here on the body's inactivity is guarded by the socket timeout set below.
        resolvePromise({ res, url });
      },
    );
    req.on("timeout", () =>
      req.destroy(new DownloadError(url, null, `no answer from ${u.host} within ${timeoutMs / 1000} s (${url})`)),
    );
    req.on("error", (e: NodeJS.ErrnoException) => {
      if (e instanceof DownloadError) reject(e);
      else
        reject(new DownloadError(url, null, `cannot reach ${u.host}: ${e.code ?? e.message} (${url})`, { cause: e }));
    });
  });
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function statusMessage(status: number, url: string): string {
  if (status === 404) return `not found (HTTP 404): ${url}`;
  if (status === 401 || status === 403)
    return `access denied (HTTP ${status}): ${url} (a gated or private repository needs a token in $HF_TOKEN)`;
  return `HTTP ${status} from ${url}`;
}

/** Thrown inside the body loop when the connection drops: the caller resumes. */
class Interrupted extends Error {}

/**
 * Downloads `url` to `dest` (see the file comment): resumes `<dest>.partial`, verifies, renames.
 * Throws DownloadError (HTTP/connection) or MacLmError MACLM_CHECKSUM_MISMATCH.
 */
export async function downloadFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const partial = `${dest}.partial`;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const retries = opts.retries ?? 3;
  await mkdir(dirname(dest), { recursive: true });

  const meta: Meta = { sha256: null, size: null };
  const firstResumedFrom = await fileSize(partial);
  let requests = 0;
  let lastError: unknown = null;

  for (let attempt = 0; ; attempt++) {
    if (attempt > retries) {
      const why = lastError instanceof Error ? lastError.message : String(lastError);
      throw new DownloadError(
        url,
        null,
        `download of ${url} failed after ${retries + 1} attempts (${why}); ` + `run again to resume from ${partial}`,
        { cause: lastError },
      );
    }
    const have = await fileSize(partial);
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (have > 0) headers.range = `bytes=${have}-`;
    requests++;
    let res: http.IncomingMessage;
    try {
      ({ res } = await get(url, headers, timeoutMs, meta));
    } catch (e) {
      // A refused connection on the first try is not worth retrying (the hub is unreachable: fail fast so the
      // caller can fall back); mid-download, it is.
      if (attempt === 0 && have === 0) throw e;
      lastError = e;
      continue;
    }
    const status = res.statusCode ?? 0;
    let offset: number;
    if (status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers["content-range"] ?? "");
      const start = m ? Number(m[1]) : -1;
      if (m && m[3] !== "*" && meta.size === null) meta.size = Number(m[3]);
      if (start !== have) {
        // The server answered a different range: start over.
        res.resume();
        await rm(partial, { force: true });
        lastError = new Error(`server answered range ${res.headers["content-range"]} for bytes=${have}-`);
        continue;
      }
      offset = have;
    } else if (status === 200) {
      const len = Number(res.headers["content-length"]);
      if (meta.size === null && res.headers["content-length"] !== undefined && Number.isFinite(len)) meta.size = len;
      offset = 0; // the server ignored the range (or there was none): write from the start
    } else if (status === 416 && have > 0) {
      res.resume();
      // Range not satisfiable: the partial file is already whole (or longer than the file). Verify below.
      const total = /\/(\d+)$/.exec(res.headers["content-range"] ?? "");
      if (total && meta.size === null) meta.size = Number(total[1]);
      if (meta.size !== null && have === meta.size) break;
      await rm(partial, { force: true });
      lastError = new Error(`partial file of ${have} bytes does not fit the remote file`);
      continue;
    } else {
      res.resume();
      throw new DownloadError(url, status, statusMessage(status, url));
    }

    try {
      await writeBody(res, partial, offset, meta.size, firstResumedFrom, opts.onProgress);
    } catch (e) {
      if (!(e instanceof Interrupted)) throw e;
      lastError = e;
      continue;
    }
    // A body shorter than announced (connection closed cleanly but early) resumes too.
    if (meta.size !== null && (await fileSize(partial)) < meta.size) {
      lastError = new Error(`connection closed at ${await fileSize(partial)} of ${meta.size} bytes`);
      continue;
    }
    break;
  }

  const size = await fileSize(partial);
  const sha256 = await sha256Of(partial);
  const expectedSha = opts.sha256?.toLowerCase() ?? meta.sha256;
  const expectedSize = opts.size ?? meta.size;
  let verified: DownloadResult["verified"] = "none";
  if (expectedSha !== null && expectedSha !== undefined) {
    if (sha256 !== expectedSha) {
      await rm(partial, { force: true });
      throw new MacLmError(
        "MACLM_CHECKSUM_MISMATCH",
        `sha256 mismatch for ${url}: expected ${expectedSha}, got ${sha256} (${size} bytes); the download was deleted`,
      );
    }
    verified = "sha256";
  } else if (expectedSize !== null && expectedSize !== undefined) {
    if (size !== expectedSize) {
      await rm(partial, { force: true });
      throw new MacLmError(
        "MACLM_CHECKSUM_MISMATCH",
        `size mismatch for ${url}: expected ${expectedSize} bytes, got ${size}; the download was deleted`,
      );
    }
    verified = "size";
  }
  await rename(partial, dest);
  return { path: dest, size, sha256, verified, resumedFrom: firstResumedFrom, requests };
}

/** Streams `res` into `path` from byte `offset` (truncating there). Rejects with Interrupted if the body breaks. */
function writeBody(
  res: http.IncomingMessage,
  path: string,
  offset: number,
  total: number | null,
  resumedFrom: number,
  onProgress: DownloadOptions["onProgress"],
): Promise<void> {
  return (async () => {
    if (offset === 0) await rm(path, { force: true });
    else await truncate(path, offset);
  })().then(
    () =>
      new Promise<void>((resolvePromise, reject) => {
        const out = createWriteStream(path, { flags: offset === 0 ? "w" : "a" });
        let received = offset;
        let failed: Error | null = null;
        const fail = (e: Error) => {
          if (failed !== null) return;
          failed = e;
          res.destroy();
          out.end();
        };
        res.on("data", (chunk: Buffer) => {
          received += chunk.length;
          if (!out.write(chunk)) {
            res.pause();
            out.once("drain", () => res.resume());
          }
          onProgress?.({ received, total, resumedFrom });
        });
        res.on("aborted", () => fail(new Interrupted(`connection dropped at ${received} bytes`)));
        res.on("error", (e) => fail(new Interrupted(`connection error at ${received} bytes: ${e.message}`)));
        res.on("end", () => {
          if (!res.complete) fail(new Interrupted(`connection dropped at ${received} bytes`));
          else out.end();
        });
        out.on("error", (e) => {
          failed = e;
          res.destroy();
          reject(new MacLmError("MACLM_BAD_FILE", `cannot write ${path}: ${e.message}`));
        });
        out.on("close", () => {
          if (failed instanceof Interrupted) reject(failed);
          else if (failed === null) resolvePromise();
        });
        // Inactivity while streaming the body: the socket timeout set on the request fires 'timeout' on it.
        res.socket?.once("timeout", () => fail(new Interrupted(`transfer stalled at ${received} bytes`)));
      }),
  );
}
