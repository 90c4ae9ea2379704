/**
 * Fault injection: damage banks (bytes overwritten, truncated, header damaged, values changed), model files,
 * checkpoints and configs, and inputs; run the real CLI (bin/mac-lm.js in a child process) on each case; classify:
 *   detected       exit 1 with one clear line (no stack trace) that names the problem (the case's `names` pattern)
 *   harmless       exit 0 with exactly the clean run's output (or, for a case that must succeed, its check passes)
 *   unclear        an error, but a stack trace or a message that does not name the problem
 *   silently wrong exit 0 with another output than the clean run's
 * The aim: unclear = silently wrong = 0. Used by test/faults/faults.test.ts (CI) and dev/faults/run.ts (the table).
 *
 * Everything runs on tiny models made here (gpt2-tiny as the base LM, bert-tiny as the amortizer's encoder, each
 * with a manifest.json as `mac-lm pull` writes) and a MAC checkpoint trained for one step by `mac-lm train`; one
 * clean baseline (a bank of a few documents, one of them long, and the answers to two questions) is shared by all
 * cases. A few cases use the real cached models (SmolLM2 GGUF, MiniLM) when present: copies of them damaged.
 */
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { execFileSync, spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import { type CliResult, cli } from "../helpers/cli.js";
import { cacheDir } from "../../src/hub/cache.js";
import { entryChecksum } from "../../src/mac/memory/bank.js";

export type Outcome = "detected" | "harmless" | "unclear" | "silently wrong";

export interface CaseResult {
  name: string;
  group: string;
  outcome: Outcome;
  /** The first line of the error, or why the result counts as harmless / wrong. */
  detail: string;
  seconds: number;
}

interface Ctx {
  root: string;
  ckpt: string;
  base: string;
  enc: string;
  bank: string;
  squad: string;
  askArgs: (bank: string) => string[];
  baselineAsk: string;
}

interface FaultCase {
  name: string;
  group: "bank" | "model files" | "checkpoint/config" | "input" | "output folder" | "real models";
  /** Prepares the fault in `dir` (a fresh folder of its own) and returns the command to run. */
  run: (ctx: Ctx, dir: string) => { args: string[]; env?: Record<string, string>; runner?: string[] } | null;
  /** What a clear error must mention (the damaged file, the document, the flag...). */
  names: RegExp;
  /** The clean result a successful run must reproduce; default: the baseline answers. */
  same?: (r: CliResult, ctx: Ctx, dir: string) => string | null | Promise<string | null>;
}

const W = resolve(".");
const sha = (p: string): string => createHash("sha256").update(readFileSync(p)).digest("hex");

/** A folder with a manifest.json listing its files with sizes and sha256, as `mac-lm pull` writes it. */
function writeManifest(dir: string, name: string, weights: string): void {
  const files = readdirSync(dir)
    .filter((f) => f !== "manifest.json" && f !== "verified.json")
    .map((f) => ({ path: f, size: statSync(join(dir, f)).size, sha256: sha(join(dir, f)) }));
  writeFileSync(
    join(dir, "manifest.json"),
    JSON.stringify({ name, source: "hub", origin: "test", format: "safetensors", weights, files, createdAt: "x" }),
  );
}

function tinyModels(root: string): { base: string; enc: string } {
  const base = join(root, "models", "base");
  const enc = join(root, "models", "enc");
  mkdirSync(base, { recursive: true });
  mkdirSync(enc, { recursive: true });
  for (const f of ["config.json", "model.safetensors", "generation_config.json"])
    copyFileSync(join(W, "test/fixtures/models/gpt2-tiny", f), join(base, f));
  // A byte-level BPE with exactly gpt2-tiny's 96 ids: printable ASCII, "Ġ" (space), EOS.
  const vocab: Record<string, number> = { "<|endoftext|>": 0, Ġ: 1 };
  for (let c = 33; c <= 126; c++) vocab[String.fromCharCode(c)] = c - 31;
  writeFileSync(join(base, "vocab.json"), JSON.stringify(vocab));
  writeFileSync(join(base, "merges.txt"), "#version: 0.2\n");
  for (const f of ["config.json", "model.safetensors"])
    copyFileSync(join(W, "test/fixtures/models/bert-tiny", f), join(enc, f));
  // WordPiece over bert-tiny's 100 ids.
  const letters = [..."abcdefghijklmnopqrstuvwxyz0123456789"];
  const toks = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    ...letters,
    ...".,?!'-:;()",
    ...letters.map((c) => `##${c}`),
  ];
  while (toks.length < 100) toks.push(`[unused${toks.length}]`);
  writeFileSync(join(enc, "vocab.txt"), toks.join("\n") + "\n");
  writeFileSync(join(enc, "tokenizer_config.json"), JSON.stringify({ do_lower_case: true }));
  writeManifest(base, "base", "model.safetensors");
  writeManifest(enc, "enc", "model.safetensors");
  return { base, enc };
}

const DOCS = ["zorva lives in mirefall.", "quent is a baker in oslar.", "lumo was born in 1843."];
const LONG = Array.from({ length: 30 }, (_, i) => `fact ${i}: item${i} is kept in room ${i * 7}.`).join(" ");
const QUESTIONS = ["who is zorva?", "what is quent?"];

async function must(args: string[], what: string): Promise<CliResult> {
  const r = await cli(args);
  if (r.code !== 0) throw new Error(`fault harness setup: ${what} failed (exit ${r.code}):\n${r.stderr}`);
  return r;
}

export async function setup(root: string): Promise<Ctx> {
  const { base, enc } = tinyModels(root);
  const config = join(root, "mac.json");
  writeFileSync(
    config,
    JSON.stringify({
      base,
      numSlots: 2,
      amortizer: { kind: "encoder-queries", encoder: enc, maxLength: 24, decoderLayers: 1, decoderHeads: 2 },
      questionMaxLength: 16,
      aggregator: { numBlocks: 1, numHeads: 2, headDim: 8 },
      modulation: { kind: "prefix-shared", numPrefixTokens: 2, hidden: 16 },
      qaTemplate: "Q: {question}\nA:",
      maxQaLength: 28,
    }),
  );
  const squad = join(root, "squad.json");
  writeFileSync(
    squad,
    JSON.stringify({
      data: ["alpha", "beta", "gamma", "delta"].map((t, i) => ({
        title: t,
        paragraphs: [
          {
            context: `${t} tower was built in ${1880 + i}.`,
            qas: [{ id: `${i}`, question: `when was ${t} built?`, answers: [{ text: `${1880 + i}` }] }],
          },
        ],
      })),
    }),
  );
  const ckpt = join(root, "run");
  await must(
    ["train", "--config", config, "--data", squad, "--out", ckpt, "--steps", "1", "--batch-size", "2"].concat([
      "--checkpoint-every",
      "1",
      "--eval-every",
      "0",
      "--val-articles",
      "1",
      "--test-articles",
      "0",
    ]),
    "train",
  );
  const long = join(root, "long.txt");
  writeFileSync(long, LONG + "\n");
  const bank = join(root, "bank");
  await must(["adapt", "-c", ckpt, "-b", bank, ...DOCS, "--file", long], "adapt");
  const askArgs = (b: string) => ["ask", "-c", ckpt, "-b", b, "-n", "6", ...QUESTIONS];
  const baselineAsk = (await must(askArgs(bank), "ask")).stdout;
  return { root, ckpt, base, enc, bank, squad, askArgs, baselineAsk };
}

/** A copy of the clean bank folder in `dir`; returns the copy's folder and its bank.sqlite. */
function bankCopy(ctx: Ctx, dir: string): { b: string; f: string } {
  const b = join(dir, "bank");
  cpSync(ctx.bank, b, { recursive: true });
  return { b, f: join(b, "bank.sqlite") };
}

/** A copy of the checkpoint whose config points at copies of the tiny models (to damage them safely). */
function modelCopies(ctx: Ctx, dir: string): { ckpt: string; base: string; enc: string } {
  const base = join(dir, "base");
  const enc = join(dir, "enc");
  cpSync(ctx.base, base, { recursive: true });
  cpSync(ctx.enc, enc, { recursive: true });
  const ckpt = join(dir, "ckpt");
  cpSync(ctx.ckpt, ckpt, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(ckpt, "config.json"), "utf8"));
  cfg.base = base;
  cfg.amortizer.encoder = enc;
  writeFileSync(join(ckpt, "config.json"), JSON.stringify(cfg));
  return { ckpt, base, enc };
}

function overwrite(file: string, offset: number, bytes: Buffer): void {
  const b = readFileSync(file);
  bytes.copy(b, Math.min(offset, Math.max(0, b.length - bytes.length)));
  writeFileSync(file, b);
}

/** Deterministic "random" bytes. */
function noise(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let h = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    h = (Math.imul(h ^ (h >>> 15), 2246822519) + 0x9e3779b9) >>> 0;
    out[i] = h & 0xff;
  }
  return out;
}

/** After a successful adapt into a damaged bank: the bank must check clean (nothing appended to a broken file). */
async function bankStillSound(bankDir: string): Promise<string | null> {
  const r = await cli(["bank", "check", "-b", bankDir]);
  return r.code === 0 ? null : `adapt succeeded but the bank is damaged: ${r.stdout.trim().split("\n")[0]}`;
}

function cases(): FaultCase[] {
  const out: FaultCase[] = [];
  const bankFileRe = /bank\.sqlite/;
  // ---- banks: bytes overwritten, truncated, header damaged ------------------------------------------------------
  const fractions = [0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97];
  for (const [i, frac] of fractions.entries())
    for (const len of [4096, 16])
      out.push({
        name: `${len} random bytes at ${Math.round(frac * 100)}% of bank.sqlite; ask`,
        group: "bank",
        names: bankFileRe,
        run: (ctx, dir) => {
          const { b, f } = bankCopy(ctx, dir);
          overwrite(f, Math.floor(statSync(f).size * frac), noise(len, i * 7 + len));
          return { args: ctx.askArgs(b) };
        },
      });
  for (const frac of [0.3, 0.6])
    out.push({
      name: `4096 random bytes at ${frac * 100}% of bank.sqlite; adapt appends`,
      group: "bank",
      names: bankFileRe,
      run: (ctx, dir) => {
        const { b, f } = bankCopy(ctx, dir);
        overwrite(f, Math.floor(statSync(f).size * frac), noise(4096, 99));
        return { args: ["adapt", "-c", ctx.ckpt, "-b", b, "brisk owns a red boat."] };
      },
      same: (_r, _ctx, dir) => bankStillSound(join(dir, "bank")),
    });
  for (const keep of [0, 10, 100, 0.5, 0.9])
    out.push({
      name: `bank.sqlite truncated to ${keep < 1 && keep > 0 ? `${keep * 100}%` : `${keep} bytes`}; ask`,
      group: "bank",
      names: bankFileRe,
      run: (ctx, dir) => {
        const { b, f } = bankCopy(ctx, dir);
        truncateSync(f, keep > 0 && keep < 1 ? Math.floor(statSync(f).size * keep) : keep);
        return { args: ctx.askArgs(b) };
      },
    });
  for (const [what, offset, bytes] of [
    ["magic string", 0, Buffer.from("SQLite format 4\0")],
    ["page size", 16, Buffer.from([0x00, 0x03])],
    ["application id", 68, Buffer.from([1, 2, 3, 4])],
    ["schema cookie and format", 40, Buffer.from([9, 9, 9, 9, 9, 9, 9, 9])],
    ["whole first page", 0, noise(4096, 5)],
  ] as const)
    out.push({
      name: `bank.sqlite header damaged (${what}); ask`,
      group: "bank",
      names: bankFileRe,
      run: (ctx, dir) => {
        const { b, f } = bankCopy(ctx, dir);
        overwrite(f, offset, Buffer.from(bytes));
        return { args: ctx.askArgs(b) };
      },
    });
  out.push({
    name: "one latent value changed in place (SQL); ask",
    group: "bank",
    names: /bank\.sqlite is damaged: document "[0-9a-f]+" \(window \d+\): its latent does not match its checksum/,
    run: (ctx, dir) => {
      const { b, f } = bankCopy(ctx, dir);
      const db = new Database(f);
      const r = db.prepare<[], { idx: number; data: Buffer }>("SELECT idx, data FROM payloads LIMIT 1 OFFSET 1").get()!;
      const data = Buffer.from(r.data);
      data[3] = data[3]! ^ 0x40;
      db.prepare("UPDATE payloads SET data = ? WHERE idx = ?").run(data, r.idx);
      db.close();
      return { args: ctx.askArgs(b) };
    },
  });
  out.push({
    name: "NaN written with a matching checksum; ask",
    group: "bank",
    names: /document "[0-9a-f]+" \(window \d+\): its latent holds a non-finite value/,
    run: (ctx, dir) => {
      const { b, f } = bankCopy(ctx, dir);
      const db = new Database(f);
      const r = db
        .prepare<[], { idx: number; data: Buffer; doc_id: string; win: number }>(
          "SELECT p.idx, p.data, e.doc_id, e.win FROM payloads p JOIN entries e USING (idx) LIMIT 1",
        )
        .get()!;
      const data = Buffer.from(r.data);
      data.writeUInt16LE(0x7e00, 0); // float16 NaN
      db.prepare("UPDATE payloads SET data = ?, checksum = ? WHERE idx = ?").run(
        data,
        entryChecksum(r.idx, r.doc_id, r.win, data),
        r.idx,
      );
      db.close();
      return { args: ctx.askArgs(b) };
    },
  });
  out.push({
    name: "damaged entry repaired by `bank repair`, then ask",
    group: "bank",
    names: /bank/,
    run: (ctx, dir) => {
      const { b, f } = bankCopy(ctx, dir);
      const db = new Database(f);
      db.prepare("UPDATE payloads SET data = zeroblob(length(data)) WHERE idx = (SELECT max(idx) FROM payloads)").run();
      db.close();
      execFileSync(process.execPath, [join(W, "bin/mac-lm.js"), "bank", "repair", "-c", ctx.ckpt, "-b", b], {
        stdio: "ignore",
      });
      return { args: ctx.askArgs(b) };
    },
  });
  out.push({
    name: "bank rebuilt by `bank repair` after 4 KB overwritten, then ask",
    group: "bank",
    names: /bank/,
    run: (ctx, dir) => {
      const { b, f } = bankCopy(ctx, dir);
      overwrite(f, Math.floor(statSync(f).size * 0.5), noise(4096, 3));
      try {
        execFileSync(process.execPath, [join(W, "bin/mac-lm.js"), "bank", "repair", "-c", ctx.ckpt, "-b", b], {
          stdio: "ignore",
        });
      } catch {
        // a repair that cannot recover everything exits 1; ask must then fail or answer as before
      }
      return { args: ctx.askArgs(b) };
    },
  });
  out.push({
    name: "empty bank (created, no documents); ask",
    group: "bank",
    names: /holds no documents yet; add some with `mac-lm adapt/,
    run: (ctx, dir) => {
      const { b, f } = bankCopy(ctx, dir);
      const db = new Database(f);
      db.exec("DELETE FROM payloads; DELETE FROM entries; DELETE FROM documents;");
      db.close();
      return { args: ctx.askArgs(b) };
    },
  });
  out.push({
    name: "bank.sqlite is a text file; ask",
    group: "bank",
    names: /bank\.sqlite/,
    run: (ctx, dir) => {
      mkdirSync(join(dir, "bank"));
      writeFileSync(join(dir, "bank", "bank.sqlite"), "hello\n".repeat(1000));
      return { args: ctx.askArgs(join(dir, "bank")) };
    },
  });
  out.push({
    name: "bank made with another checkpoint; ask",
    group: "bank",
    names: /was made with another checkpoint or other base models/,
    run: (ctx, dir) => {
      const { b } = bankCopy(ctx, dir);
      const other = join(dir, "other");
      cpSync(ctx.ckpt, other, { recursive: true });
      const cfg = JSON.parse(readFileSync(join(other, "config.json"), "utf8"));
      cfg.seed = 5; // another configuration: its fingerprint differs
      writeFileSync(join(other, "config.json"), JSON.stringify(cfg));
      return { args: ["ask", "-c", other, "-b", b, "-n", "6", ...QUESTIONS] };
    },
  });
  out.push({
    name: "bank made with other base-model weights (re-pulled, manifest consistent); ask",
    group: "bank",
    names: /was made with another checkpoint or other base models/,
    run: (ctx, dir) => {
      const m = modelCopies(ctx, dir);
      const b = join(dir, "bank2");
      execFileSync(process.execPath, [join(W, "bin/mac-lm.js"), "adapt", "-c", m.ckpt, "-b", b, ...DOCS], {
        stdio: "ignore",
      });
      overwrite(join(m.base, "model.safetensors"), 5000, noise(8, 1));
      writeManifest(m.base, "base", "model.safetensors");
      return { args: ["ask", "-c", m.ckpt, "-b", b, "-n", "6", ...QUESTIONS] };
    },
  });
  out.push({
    name: "adapt --dtype float32 into a float16 bank",
    group: "bank",
    names: /stores float16 entries, so --dtype float32 cannot be added/,
    run: (ctx, dir) => ({ args: ["adapt", "-c", ctx.ckpt, "-b", bankCopy(ctx, dir).b, "--dtype", "float32", "x y"] }),
  });
  // ---- model files -----------------------------------------------------------------------------------------------
  for (const [who, file, offset] of [
    ["base LM", "model.safetensors", 0.5],
    ["base LM", "model.safetensors", 0.01],
    ["encoder", "model.safetensors", 0.7],
    ["base LM", "vocab.json", 0.5],
    ["encoder", "vocab.txt", 0.3],
  ] as const)
    for (const cmd of ["ask", "adapt"] as const)
      out.push({
        name: `8 bytes flipped at ${offset * 100}% of the ${who}'s ${file}; ${cmd}`,
        group: "model files",
        names: new RegExp(`${file.replace(".", "\\.")} is damaged: its sha256 is [0-9a-f]+, the manifest records`),
        run: (ctx, dir) => {
          const m = modelCopies(ctx, dir);
          const f = join(who === "base LM" ? m.base : m.enc, file);
          const b = readFileSync(f);
          const at = Math.floor(b.length * offset);
          for (let k = 0; k < 8; k++) b[at + k] = b[at + k]! ^ 0x5a;
          writeFileSync(f, b);
          return cmd === "ask"
            ? { args: ["ask", "-c", m.ckpt, "--no-memory", "-n", "6", ...QUESTIONS] }
            : { args: ["adapt", "-c", m.ckpt, "-b", join(dir, "nb"), ...DOCS] };
        },
        same: (r, ctx) =>
          cmd === "ask"
            ? r.stdout === ctx.baselineAsk.replace(/A \(memory[^\n]*\n/g, "")
              ? null
              : "different answers"
            : "adapt succeeded with a damaged model",
      });
  out.push({
    name: "base LM weights truncated; generate",
    group: "model files",
    names: /model\.safetensors is truncated: \d+ bytes, the manifest records \d+/,
    run: (ctx, dir) => {
      const m = modelCopies(ctx, dir);
      truncateSync(join(m.base, "model.safetensors"), 1000);
      return { args: ["generate", "-m", m.base, "-p", "hello", "-n", "3"] };
    },
  });
  out.push({
    name: "encoder file deleted; adapt",
    group: "model files",
    names: /vocab\.txt is missing/,
    run: (ctx, dir) => {
      const m = modelCopies(ctx, dir);
      rmSync(join(m.enc, "vocab.txt"));
      return { args: ["adapt", "-c", m.ckpt, "-b", join(dir, "nb"), ...DOCS] };
    },
  });
  out.push({
    name: "manifest.json is not JSON; ask",
    group: "model files",
    names: /manifest\.json: not a valid manifest/,
    run: (ctx, dir) => {
      const m = modelCopies(ctx, dir);
      writeFileSync(join(m.base, "manifest.json"), "{ nope");
      return { args: ["ask", "-c", m.ckpt, "--no-memory", ...QUESTIONS] };
    },
  });
  // ---- checkpoint and configs ------------------------------------------------------------------------------------
  out.push({
    name: "checkpoint weights: 8 bytes flipped; ask --no-memory",
    group: "checkpoint/config",
    names: /model\.safetensors is damaged: its sha256 is [0-9a-f]+, checksums\.json records/,
    run: (ctx, dir) => {
      const c = join(dir, "ckpt");
      cpSync(ctx.ckpt, c, { recursive: true });
      const latest = readFileSync(join(c, "checkpoints", "LATEST"), "utf8").trim();
      const f = join(c, "checkpoints", latest, "model.safetensors");
      const b = readFileSync(f);
      for (let k = 0; k < 8; k++) b[b.length - 100 + k] = b[b.length - 100 + k]! ^ 0x5a;
      writeFileSync(f, b);
      return { args: ["ask", "-c", c, "--no-memory", "-n", "6", ...QUESTIONS] };
    },
    same: (r, ctx) => (r.stdout === ctx.baselineAsk.replace(/A \(memory[^\n]*\n/g, "") ? null : "different answers"),
  });
  out.push({
    name: "checkpoint config.json is not JSON; ask",
    group: "checkpoint/config",
    names: /config\.json: not readable JSON/,
    run: (ctx, dir) => {
      const c = join(dir, "ckpt");
      cpSync(ctx.ckpt, c, { recursive: true });
      writeFileSync(join(c, "config.json"), '{"numSlots": 2,');
      return { args: ["ask", "-c", c, "-b", ctx.bank, ...QUESTIONS] };
    },
  });
  out.push({
    name: "checkpoint config.json with a wrong field type; ask",
    group: "checkpoint/config",
    names: /numSlots/,
    run: (ctx, dir) => {
      const c = join(dir, "ckpt");
      cpSync(ctx.ckpt, c, { recursive: true });
      const cfg = JSON.parse(readFileSync(join(c, "config.json"), "utf8"));
      cfg.numSlots = "two";
      writeFileSync(join(c, "config.json"), JSON.stringify(cfg));
      return { args: ["ask", "-c", c, "-b", ctx.bank, ...QUESTIONS] };
    },
  });
  out.push({
    name: "checkpoint folder does not exist; ask",
    group: "checkpoint/config",
    names: /nowhere/,
    run: (ctx, dir) => ({ args: ["ask", "-c", join(dir, "nowhere"), "-b", ctx.bank, ...QUESTIONS] }),
  });
  out.push({
    name: "checkpoint is a file; adapt",
    group: "checkpoint/config",
    names: /afile/,
    run: (_ctx, dir) => {
      writeFileSync(join(dir, "afile"), "x");
      return { args: ["adapt", "-c", join(dir, "afile"), "-b", join(dir, "b"), "x y"] };
    },
  });
  out.push({
    name: "train --config with an unknown amortizer kind",
    group: "checkpoint/config",
    names: /amortizer/,
    run: (ctx, dir) => {
      writeFileSync(join(dir, "c.json"), JSON.stringify({ amortizer: { kind: "magic" } }));
      return { args: ["train", "--config", join(dir, "c.json"), "--data", ctx.squad, "--out", join(dir, "o")] };
    },
  });
  // ---- inputs ----------------------------------------------------------------------------------------------------
  const adaptFile = (ctx: Ctx, dir: string, content: Buffer | string, extra: string[] = []) => {
    writeFileSync(join(dir, "docs.txt"), content);
    return { args: ["adapt", "-c", ctx.ckpt, "-b", join(dir, "b"), "--file", join(dir, "docs.txt"), ...extra] };
  };
  for (const [name, content, re] of [
    [
      "Latin-1 text",
      Buffer.from("Caf\xe9 au lait.\n", "latin1"),
      /docs\.txt is not valid UTF-8: byte 0xe9 at byte offset 3; .*--encoding latin1/,
    ],
    [
      "an overlong UTF-8 sequence",
      Buffer.from([0x61, 0x62, 0xc0, 0xaf, 0x63]),
      /docs\.txt is not valid UTF-8: byte 0xc0 at byte offset 2/,
    ],
    ["a lone UTF-16 surrogate", Buffer.from([0x61, 0xed, 0xa0, 0x80]), /byte offset 1/],
    ["a cut multi-byte character", Buffer.from([0x61, 0x62, 0xe2, 0x82]), /byte offset 2/],
    [
      "binary (an ELF header)",
      Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), noise(2000, 4)]),
      /docs\.txt is not a text file: control byte 0x7f at byte offset 0/,
    ],
    [
      "NUL bytes in the middle",
      Buffer.from("good text\n\0\0\0 more"),
      /docs\.txt is not a text file: control byte 0x00 at byte offset 10/,
    ],
    ["nothing (empty)", Buffer.alloc(0), /docs\.txt holds no document/],
    ["only whitespace", Buffer.from(" \n\n\t \n"), /docs\.txt holds no document/],
  ] as const)
    out.push({
      name: `adapt --file with ${name}`,
      group: "input",
      names: re,
      run: (ctx, dir) => adaptFile(ctx, dir, content),
    });
  if (existsSync("/bin/ls"))
    out.push({
      name: "adapt --file /bin/ls",
      group: "input",
      names: /\/bin\/ls is not a text file: control byte 0x7f at byte offset 0/,
      run: (ctx, dir) => ({ args: ["adapt", "-c", ctx.ckpt, "-b", join(dir, "b"), "--file", "/bin/ls"] }),
    });
  out.push({
    name: "adapt --file Latin-1 with --encoding latin1 (transcoded, stored as Café)",
    group: "input",
    names: /^$/,
    run: (ctx, dir) => adaptFile(ctx, dir, Buffer.from("Caf\xe9 au lait.\n", "latin1"), ["--encoding", "latin1"]),
    same: (r, _ctx, dir) => {
      const db = new Database(join(dir, "b", "bank.sqlite"), { readonly: true });
      const text = db.prepare<[], string>("SELECT text FROM documents").pluck().get();
      db.close();
      return r.code === 0 && text === "Café au lait." ? null : `stored ${JSON.stringify(text)}`;
    },
  });
  out.push({
    name: "adapt a long document (several windows, said in the output)",
    group: "input",
    names: /^$/,
    run: (ctx, dir) => ({ args: ["adapt", "-c", ctx.ckpt, "-b", join(dir, "b"), LONG.repeat(3)] }),
    same: (r) =>
      /stored as \d+ overlapping windows/.test(r.stderr) &&
      /1 documents, \d+ entries .*1 long document stored as \d+ windows/.test(r.stdout)
        ? null
        : "the split was not reported",
  });
  for (const [name, args, re] of [
    [
      "an empty document given inline",
      ["adapt", "-c", "CKPT", "-b", "DIR/b", ""],
      /document 1 \(given inline\) is empty/,
    ],
    [
      "a whitespace document given inline",
      ["adapt", "-c", "CKPT", "-b", "DIR/b", "  \n "],
      /document 1 \(given inline\) is only whitespace/,
    ],
    ["an empty question", ["ask", "-c", "CKPT", "-b", "BANK", ""], /question 1 is empty/],
    ["a whitespace question", ["ask", "-c", "CKPT", "-b", "BANK", "what?", " \t"], /question 2 is only whitespace/],
    [
      "--file that does not exist",
      ["adapt", "-c", "CKPT", "-b", "DIR/b", "--file", "DIR/none.txt"],
      /--file .*none\.txt does not exist/,
    ],
    ["--file that is a folder", ["adapt", "-c", "CKPT", "-b", "DIR/b", "--file", "DIR"], /--file .* is a folder/],
    ["--squad that is not JSON", ["adapt", "-c", "CKPT", "-b", "DIR/b", "--squad", "DIR/bad.json"], /bad\.json/],
    ["--squad that does not exist", ["adapt", "-c", "CKPT", "-b", "DIR/b", "--squad", "DIR/none.json"], /none\.json/],
    [
      "-n that is not a number",
      ["ask", "-c", "CKPT", "-b", "BANK", "-n", "lots", "q?"],
      /--max-new-tokens must be an integer/,
    ],
    ["--encoding that is unknown", ["adapt", "-c", "CKPT", "-b", "DIR/b", "--encoding", "utf16", "x"], /--encoding/],
    [
      "--hierarchical 1",
      ["ask", "-c", "CKPT", "-b", "BANK", "--hierarchical", "1", "q?"],
      /--hierarchical must be an integer >= 2/,
    ],
    ["-b that is a file", ["adapt", "-c", "CKPT", "-b", "DIR/bad.json", "x y"], /bad\.json is a file, not a folder/],
    ["ask -b of a folder without a bank", ["ask", "-c", "CKPT", "-b", "DIR", "q?"], /no memory bank at/],
    [
      "eval --format streamingqa on a SQuAD file",
      [
        "eval",
        "--data",
        "SQUAD",
        "--format",
        "streamingqa",
        "-c",
        "CKPT",
        "--methods",
        "bm25",
        "--no-cost",
        "-o",
        "DIR/e",
      ],
      /squad\.json/,
    ],
    ["eval --format that is unknown", ["eval", "--data", "SQUAD", "--format", "csv", "-o", "DIR/e"], /--format/],
  ] as const)
    out.push({
      name,
      group: "input",
      names: re,
      run: (ctx, dir) => {
        writeFileSync(join(dir, "bad.json"), "{ not json");
        return {
          args: args.map((a) =>
            a.replace("CKPT", ctx.ckpt).replace("BANK", ctx.bank).replace("SQUAD", ctx.squad).replace("DIR", dir),
          ),
        };
      },
    });
  // ---- output folders --------------------------------------------------------------------------------------------
  const foreign = (dir: string, files: string[]): string => {
    const o = join(dir, "out");
    mkdirSync(o);
    for (const f of files) writeFileSync(join(o, f), `written by another tool: ${f}\n`);
    return o;
  };
  const untouched = (files: string[]) => (_r: CliResult, _ctx: Ctx, dir: string) =>
    files.every((f) => readFileSync(join(dir, "out", f), "utf8") === `written by another tool: ${f}\n`)
      ? "it succeeded"
      : "it overwrote another tool's files";
  for (const [cmd, files] of [
    ["eval", ["report.md", "results.json"]],
    ["train", ["split.json", "metrics.jsonl"]],
    ["adapt", ["notes.txt"]],
  ] as const)
    out.push({
      name: `${cmd} into a folder holding another tool's ${files.join(", ")}`,
      group: "output folder",
      names: /is not empty and was not made by mac-lm \(it holds .*\).*give another folder/,
      run: (ctx, dir) => {
        const o = foreign(dir, [...files]);
        const args =
          cmd === "eval"
            ? ["eval", "--data", ctx.squad, "-c", ctx.ckpt, "--methods", "bm25", "--no-cost", "-o", o]
            : cmd === "train"
              ? ["train", "--data", ctx.squad, "--out", o, "--steps", "1"]
              : ["adapt", "-c", ctx.ckpt, "-b", o, "x y"];
        return { args };
      },
      same: untouched([...files]),
    });
  out.push({
    name: "eval into a training run folder",
    group: "output folder",
    names: /holds a mac-lm training run, not an eval run/,
    run: (ctx, dir) => {
      const o = join(dir, "run");
      cpSync(ctx.ckpt, o, { recursive: true });
      return { args: ["eval", "--data", ctx.squad, "-c", ctx.ckpt, "--methods", "bm25", "--no-cost", "-o", o] };
    },
  });
  out.push({
    name: "train resumed on other data",
    group: "output folder",
    names: /holds a training run made with other settings \(its data was/,
    run: (ctx, dir) => {
      const o = join(dir, "run");
      cpSync(ctx.ckpt, o, { recursive: true });
      copyFileSync(ctx.squad, join(dir, "other.json"));
      return { args: ["train", "--data", join(dir, "other.json"), "--out", o, "--steps", "2"] };
    },
  });
  // ---- files the user may not read (only meaningful when not root) ------------------------------------------------
  if (process.getuid?.() !== 0)
    out.push({
      name: "adapt --file without read permission",
      group: "input",
      names: /permission denied/,
      run: (ctx, dir) => {
        writeFileSync(join(dir, "secret.txt"), "a document");
        chmodSync(join(dir, "secret.txt"), 0);
        return { args: ["adapt", "-c", ctx.ckpt, "-b", join(dir, "b"), "--file", join(dir, "secret.txt")] };
      },
    });
  // ---- a bank the user may read but not write: as root, run the CLI as "nobody" (runuser) ---------------------------
  if (process.getuid?.() === 0 && existsSync("/usr/sbin/runuser") && nobodyCanRun()) {
    const asNobody = (args: string[]) => ({
      args: ["--", process.execPath, join(W, "bin/mac-lm.js"), ...args],
      runner: ["/usr/sbin/runuser", "-u", "nobody"],
    });
    out.push({
      name: "ask on a bank the user may read but not write",
      group: "bank",
      names: /bank\.sqlite/,
      run: (ctx, dir) => {
        chmodSync(dir, 0o755);
        return asNobody(ctx.askArgs(bankCopy(ctx, dir).b));
      },
    });
    out.push({
      name: "adapt into a bank the user may read but not write",
      group: "bank",
      names:
        /permission denied: .*bank\.sqlite; check its permissions|bank\.sqlite cannot be written .*check the permissions/,
      run: (ctx, dir) => {
        chmodSync(dir, 0o755);
        return asNobody(["adapt", "-c", ctx.ckpt, "-b", bankCopy(ctx, dir).b, "brisk owns a red boat."]);
      },
      same: () => "adapt succeeded on a read-only bank",
    });
  }
  // ---- the real cached models (copies), when present ---------------------------------------------------------------
  const real = join(cacheDir(), "models");
  if (existsSync(join(real, "smollm2-135m-instruct", "manifest.json")))
    out.push({
      name: "real SmolLM2 GGUF (copy): 4 bytes flipped mid-file; generate",
      group: "real models",
      names: /SmolLM2-135M-Instruct\.Q4_1\.gguf is damaged: its sha256 is .*mac-lm pull smollm2-135m-instruct --force/,
      run: (_ctx, dir) => {
        const c = join(dir, "cache", "models", "smollm2-135m-instruct");
        cpSync(join(real, "smollm2-135m-instruct"), c, { recursive: true });
        const f = join(c, "SmolLM2-135M-Instruct.Q4_1.gguf");
        overwrite(f, Math.floor(statSync(f).size / 2), noise(4, 8));
        return {
          args: [
            "generate",
            "-m",
            "smollm2-135m-instruct",
            "-p",
            "The capital of France is",
            "--cache",
            join(dir, "cache"),
          ],
        };
      },
      same: () => "generate succeeded with a damaged model",
    });
  if (existsSync(join(real, "all-minilm-l6-v2", "manifest.json")) && existsSync(join(real, "smollm2-135m-instruct")))
    out.push({
      name: "real MiniLM weights (copy) truncated; adapt with the shipped checkpoint",
      group: "real models",
      names: /all-minilm-l6-v2\/model\.safetensors is truncated: .*mac-lm pull all-minilm-l6-v2 --force/,
      run: (_ctx, dir) => {
        for (const m of ["smollm2-135m-instruct", "all-minilm-l6-v2"])
          cpSync(join(real, m), join(dir, "cache", "models", m), { recursive: true });
        const f = join(dir, "cache", "models", "all-minilm-l6-v2", "model.safetensors");
        truncateSync(f, statSync(f).size - 1000);
        return {
          args: [
            "adapt",
            "-c",
            join(W, "checkpoints/mac-default"),
            "-b",
            join(dir, "b"),
            "x y",
            "--cache",
            join(dir, "cache"),
          ],
        };
      },
      same: () => "adapt succeeded with a damaged model",
    });
  return out;
}

/**
 * Whether "nobody" can run this checkout's CLI at all: a checkout under a private folder (e.g. `mktemp -d`, mode 700)
 * is unreadable to that user, and the read-only-bank cases would then test the folder's mode, not mac-lm.
 */
function nobodyCanRun(): boolean {
  try {
    execFileSync("/usr/sbin/runuser", ["-u", "nobody", "--", process.execPath, join(W, "bin/mac-lm.js"), "--version"], {
      stdio: "ignore",
    });
    return true;
  } catch {
    console.warn("fault injection: the read-only-bank cases as user nobody are not run: nobody cannot read " + W);
    return false;
  }
}

/** Runs `runner ...args` (e.g. runuser -u nobody -- node bin/mac-lm.js ...) and collects its output. */
function runAs(runner: string[], args: string[]): Promise<CliResult> {
  return new Promise((done) => {
    const child = spawn(runner[0]!, [...runner.slice(1), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

function classify(c: FaultCase, r: CliResult, sameDetail: string | null): { outcome: Outcome; detail: string } {
  if (r.code !== 0) {
    const lines = r.stderr.trim().split("\n");
    const err = lines.filter((l) => l.startsWith("mac-lm: ") || l.startsWith("error: "));
    const stack = /\n\s+at .+:\d+:\d+\)?/.test(r.stderr);
    const named = err.some((l) => c.names.test(l));
    if (!stack && named) return { outcome: "detected", detail: err.find((l) => c.names.test(l))! };
    return {
      outcome: "unclear",
      detail: `${stack ? `stack trace (${(/\n\s+at .+/.exec(r.stderr) ?? [""])[0].trim()}); ` : ""}${err[0] ?? lines[lines.length - 1] ?? "(no message)"}`,
    };
  }
  return sameDetail === null
    ? { outcome: "harmless", detail: "same result as the clean run" }
    : { outcome: "silently wrong", detail: sameDetail };
}

export interface FaultTable {
  tried: number;
  detected: number;
  harmless: number;
  unclear: number;
  silentlyWrong: number;
  seconds: number;
  cases: CaseResult[];
}

/** Runs every case (filter: substring of the name) against one shared clean baseline. */
export async function runFaults(opts: { filter?: string; log?: (line: string) => void } = {}): Promise<FaultTable> {
  const t0 = performance.now();
  const root = mkdtempSync(join(tmpdir(), "mac-lm-faults-"));
  chmodSync(root, 0o755); // the read-only cases run the CLI as another user
  try {
    const ctx = await setup(root);
    const results: CaseResult[] = [];
    for (const [i, c] of cases().entries()) {
      if (opts.filter !== undefined && !c.name.includes(opts.filter)) continue;
      const dir = join(root, `case-${i}`);
      mkdirSync(dir);
      const t = performance.now();
      let res: { outcome: Outcome; detail: string };
      try {
        const spec = c.run(ctx, dir);
        if (spec === null) continue;
        const r = spec.runner ? await runAs(spec.runner, spec.args) : await cli(spec.args, spec.env);
        let sameDetail: string | null = null;
        if (r.code === 0)
          sameDetail = c.same
            ? await c.same(r, ctx, dir)
            : r.stdout === ctx.baselineAsk
              ? null
              : `output differs from the clean run: ${JSON.stringify(r.stdout.slice(0, 200))}`;
        res = classify(c, r, sameDetail);
      } catch (e) {
        res = { outcome: "unclear", detail: `harness: ${(e as Error).message.split("\n")[0]}` };
      }
      results.push({ name: c.name, group: c.group, ...res, seconds: (performance.now() - t) / 1000 });
      opts.log?.(`${res.outcome.padEnd(14)} ${c.name}: ${res.detail}`);
      rmSync(dir, { recursive: true, force: true });
    }
    const count = (o: Outcome) => results.filter((r) => r.outcome === o).length;
    return {
      tried: results.length,
      detected: count("detected"),
      harmless: count("harmless"),
      unclear: count("unclear"),
      silentlyWrong: count("silently wrong"),
      seconds: (performance.now() - t0) / 1000,
      cases: results,
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
