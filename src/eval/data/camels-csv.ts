/**
 * The CSV splits CaMeLS and MAC read (mac-reference §4.2, §4.4) as evaluation streams. Each row is one
 * (document, question, answer) triple; a document repeats across the rows of its questions and is kept once (exact
 * text, first occurrence), so a stream is whole documents, never a split of one document's questions.
 *
 * StreamingQA (`train.csv`, `val.csv`, `test.csv`, ...): columns `text` (the news article), `question` and
 * `answers` (the reference answers joined by a literal backslash; CaMeLS scores the shortest). Documents get ids
 * "<name>#<n>" (n: order of first appearance); each document is its own article.
 *
 * ArchivalQA (the CaMeLS notebook's `qa_lt.csv` ... `test.csv`): columns `question`, `answer`, `para_id`
 * ("<doc_id>_<para_num>"), `ans_paragraph` (the answering paragraph: the document) and, with fullPassage, `ans_text`
 * (the whole article). The article is the `doc_id` column, or para_id before its last "_". Document ids are para_id
 * (or doc_id with fullPassage).
 *
 * Other columns (pandas' unnamed index, title, date, ...) are ignored. Rows keep the file's order: the CSVs are
 * already split by period (ArchivalQA: by year; StreamingQA: as distributed), so the test file is the test stream;
 * maxDocs keeps its first documents (MBC's "first 1,665 unique texts"; CaMeLS's return_k_unique on a shuffled file).
 * Errors name the file, the row (1-based, after the header), its line and the column.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { CsvError, parse } from "csv-parse/sync";
import { MacLmError } from "../../errors.js";
import type { QaStream } from "../stream.js";
import { type QaRow, streamFromRows } from "./dedup.js";

export type CamelsCsvFormat = "streamingqa" | "archivalqa";

export interface CamelsCsvOptions {
  /** Keep only the first maxDocs documents (and their questions). */
  maxDocs?: number;
  /** ArchivalQA: the whole article (`ans_text`) is the document instead of the paragraph (MAC's full_passage). */
  fullPassage?: boolean;
  /** Default "<format>-<file name without .csv>". */
  name?: string;
}

interface CsvTable {
  header: string[];
  /** Data rows with the line each starts on. */
  rows: { cells: string[]; line: number }[];
}

/** Parses a CSV file (RFC 4180 quoting, as pandas writes it) into a header and rows of equal length. */
export function readCsvTable(file: string): CsvTable {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new MacLmError("MACLM_BAD_FILE", `${file}: not readable (${(e as Error).message})`);
  }
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, { bom: true, info: true, skip_empty_lines: true }) as unknown as typeof records;
  } catch (e) {
    if (e instanceof CsvError) throw new MacLmError("MACLM_BAD_FILE", `${file}: bad CSV: ${e.message}`, { cause: e });
    throw e;
  }
  if (records.length === 0) throw new MacLmError("MACLM_BAD_FILE", `${file}: empty CSV (no header row)`);
  const newlines = (cells: string[]): number => cells.reduce((n, c) => n + (c.match(/\r\n|\r|\n/g)?.length ?? 0), 0);
  const [head, ...body] = records;
  return {
    header: head!.record.map((h) => h.trim()),
    rows: body.map((r) => ({ cells: r.record, line: r.info.lines - newlines(r.record) })),
  };
}

class Columns {
  private readonly index = new Map<string, number>();
  constructor(
    private readonly file: string,
    header: string[],
  ) {
    header.forEach((h, i) => {
      if (h !== "" && !this.index.has(h)) this.index.set(h, i);
    });
  }
  has(name: string): boolean {
    return this.index.has(name);
  }
  require(names: string[], what: string): void {
    const missing = names.filter((n) => !this.index.has(n));
    if (missing.length > 0)
      throw new MacLmError(
        "MACLM_BAD_FILE",
        `${this.file}: ${what} needs column${missing.length > 1 ? "s" : ""} ${missing.map((m) => `"${m}"`).join(", ")}; the header has ${[...this.index.keys()].map((k) => `"${k}"`).join(", ") || "no named column"}`,
      );
  }
  /** The cell of `name` in a row; non-empty (after trimming) unless optional. */
  get(row: { cells: string[]; line: number }, rowNo: number, name: string, optional = false): string {
    const v = row.cells[this.index.get(name)!] ?? "";
    if (!optional && v.trim() === "")
      throw new MacLmError("MACLM_BAD_FILE", `${this.file}: row ${rowNo} (line ${row.line}), column "${name}": empty`);
    return v;
  }
}

const defaultName = (format: CamelsCsvFormat, file: string): string => `${format}-${basename(file, ".csv")}`;

/** StreamingQA's CSV (CaMeLS/MAC): columns text, question, answers (backslash-separated). */
export function streamingQaStream(file: string, opts: CamelsCsvOptions = {}): QaStream {
  const table = readCsvTable(file);
  const cols = new Columns(file, table.header);
  cols.require(["text", "question", "answers"], "StreamingQA");
  const name = opts.name ?? defaultName("streamingqa", file);
  const ids = new Map<string, string>();
  function* rows(): Generator<QaRow> {
    for (const [i, row] of table.rows.entries()) {
      const rowNo = i + 1;
      const text = cols.get(row, rowNo, "text");
      const question = cols.get(row, rowNo, "question").trim();
      const answers = cols
        .get(row, rowNo, "answers")
        .split("\\")
        .map((a) => a.trim())
        .filter((a) => a !== "");
      if (answers.length === 0)
        throw new MacLmError(
          "MACLM_BAD_FILE",
          `${file}: row ${rowNo} (line ${row.line}), column "answers": no answer between the backslashes`,
        );
      let docId = ids.get(text);
      if (docId === undefined) ids.set(text, (docId = `${name}#${ids.size}`));
      yield {
        docId,
        text,
        article: docId,
        questionId: `${name}:${rowNo}`,
        question,
        answers,
        where: `${file}: row ${rowNo} (line ${row.line})`,
      };
    }
  }
  return streamFromRows(name, rows(), { maxDocs: opts.maxDocs });
}

/** ArchivalQA's CSV (the CaMeLS notebook): columns question, answer, para_id, ans_paragraph (or ans_text). */
export function archivalQaStream(file: string, opts: CamelsCsvOptions = {}): QaStream {
  const table = readCsvTable(file);
  const cols = new Columns(file, table.header);
  const docColumn = opts.fullPassage ? "ans_text" : "ans_paragraph";
  cols.require(["question", "answer", "para_id", docColumn], "ArchivalQA");
  const name = opts.name ?? defaultName("archivalqa", file);
  function* rows(): Generator<QaRow> {
    for (const [i, row] of table.rows.entries()) {
      const rowNo = i + 1;
      const where = `${file}: row ${rowNo} (line ${row.line})`;
      const paraId = cols.get(row, rowNo, "para_id").trim();
      const cut = paraId.lastIndexOf("_");
      const article = cols.has("doc_id")
        ? cols.get(row, rowNo, "doc_id").trim()
        : cut > 0
          ? paraId.slice(0, cut)
          : paraId;
      yield {
        docId: opts.fullPassage ? article : paraId,
        text: cols.get(row, rowNo, docColumn),
        article,
        questionId: `${name}:${rowNo}`,
        question: cols.get(row, rowNo, "question").trim(),
        answers: [cols.get(row, rowNo, "answer").trim()],
        where,
      };
    }
  }
  return streamFromRows(name, rows(), { maxDocs: opts.maxDocs });
}

export function camelsCsvStream(file: string, format: CamelsCsvFormat, opts: CamelsCsvOptions = {}): QaStream {
  if (format === "streamingqa") return streamingQaStream(file, opts);
  if (format === "archivalqa") return archivalQaStream(file, opts);
  throw new MacLmError(
    "MACLM_BAD_ARGUMENT",
    `camelsCsvStream: format must be streamingqa or archivalqa, got "${String(format)}"`,
  );
}
