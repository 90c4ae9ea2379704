/**
 * A small HTTP server laid out like the Hugging Face hub, for download tests (node:http on 127.0.0.1, ephemeral
 * port). `GET /<repo>/resolve/<rev>/<file>` answers like the hub: small files directly (git-sha1 ETag), LFS files
 * with a 302 to `/cdn/<sha256>` carrying X-Linked-Etag / X-Linked-Size. Bodies honour `Range: bytes=N-` (206).
 * Faults on demand: drop the connection after some bytes, never answer, ignore Range, advertise a wrong sha256.
 */
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface ServedFile {
  body: Buffer;
  /** Serve like an LFS file: redirect to /cdn/<sha256> with X-Linked-Etag (default false). */
  lfs?: boolean;
  /** Advertise this sha256 instead of the real one. */
  fakeSha256?: string;
  /** For the next `drops` body responses, destroy the socket after `dropAfter` bytes. */
  dropAfter?: number;
  drops?: number;
  /** Answer 200 with the whole body even when a Range is asked. */
  ignoreRange?: boolean;
  /** Accept the request but never answer. */
  hang?: boolean;
  /** With lfs: redirect to this absolute URL instead of /cdn/<sha256> on this server. */
  redirectTo?: string;
}

export interface LoggedRequest {
  path: string;
  range: string | undefined;
  authorization: string | undefined;
}

export interface HubServer {
  url: string;
  requests: LoggedRequest[];
  files: Map<string, ServedFile>;
  close(): Promise<void>;
}

const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
const sha1 = (b: Buffer): string => createHash("sha1").update(b).digest("hex");

/** `files` maps "<repo>/resolve/<rev>/<file>" (no leading slash) to what to serve. */
export async function startHubServer(files: Record<string, ServedFile>): Promise<HubServer> {
  const map = new Map(Object.entries(files));
  const requests: LoggedRequest[] = [];
  const sockets = new Set<import("node:net").Socket>();

  const sendBody = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    f: ServedFile,
    headers: Record<string, string>,
  ) => {
    const total = f.body.length;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    let start = 0;
    if (m && !f.ignoreRange) {
      start = Number(m[1]);
      if (start >= total) {
        res.writeHead(416, { "content-range": `bytes */${total}` });
        res.end();
        return;
      }
      res.writeHead(206, {
        ...headers,
        "content-length": String(total - start),
        "content-range": `bytes ${start}-${total - 1}/${total}`,
      });
    } else {
      res.writeHead(200, { ...headers, "content-length": String(total) });
    }
    const chunk = f.body.subarray(start);
    if (f.dropAfter !== undefined && (f.drops ?? 0) > 0) {
      f.drops = (f.drops ?? 0) - 1;
      res.write(chunk.subarray(0, f.dropAfter), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(chunk);
  };

  const server = http.createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? "/").split("?")[0]!.slice(1));
    requests.push({ path, range: req.headers.range, authorization: req.headers.authorization });
    if (path.startsWith("cdn/")) {
      const sha = path.slice(4);
      const f = [...map.values()].find((x) => sha256(x.body) === sha);
      if (f === undefined) {
        res.writeHead(404).end();
        return;
      }
      sendBody(req, res, f, { etag: `"${sha}"` });
      return;
    }
    const f = map.get(path);
    if (f === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("Entry not found");
      return;
    }
    if (f.hang) return;
    if (f.lfs) {
      const real = sha256(f.body);
      res.writeHead(302, {
        location: f.redirectTo ?? `/cdn/${real}`,
        "x-linked-etag": `"${f.fakeSha256 ?? real}"`,
        "x-linked-size": String(f.body.length),
        etag: `"${f.fakeSha256 ?? real}"`,
      });
      res.end();
      return;
    }
    sendBody(req, res, f, { etag: `"${sha1(f.body)}"` });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    files: map,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A port on which nothing listens (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
