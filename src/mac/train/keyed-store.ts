/**
 * A durable cache of rows by a hashed key (SQLite in WAL mode; a crash loses at most the transaction being
 * written): the frozen LM's outputs that training reuses across steps, epochs and resumes (distill.ts TeacherStore,
 * select.ts WindowLossStore). The key hashes the store's own key (what invalidates it, e.g. the prompt template) and
 * the row's parts.
 */
import { createHash } from "node:crypto";
import Database from "better-sqlite3";

export class KeyedStore<Row> {
  readonly #db: Database.Database;
  readonly #get: Database.Statement;
  readonly #put: Database.Statement;

  /** `columns`: the row's columns after the id, as SQLite declares them (e.g. "loss REAL NOT NULL"). */
  constructor(
    readonly path: string,
    readonly key: string,
    table: string,
    columns: readonly string[],
  ) {
    this.#db = new Database(path);
    this.#db.pragma("journal_mode = WAL");
    this.#db.exec(`CREATE TABLE IF NOT EXISTS ${table} (id TEXT PRIMARY KEY, ${columns.join(", ")}) STRICT`);
    const names = columns.map((c) => c.split(" ")[0]!);
    this.#get = this.#db.prepare(`SELECT ${names.join(", ")} FROM ${table} WHERE id = ?`);
    this.#put = this.#db.prepare(`INSERT OR REPLACE INTO ${table} VALUES (?, ${names.map(() => "?").join(", ")})`);
  }

  /** The id of a row: sha256 of the store's key and the row's parts. */
  protected id(...parts: unknown[]): string {
    return createHash("sha256")
      .update(JSON.stringify([this.key, ...parts]))
      .digest("hex")
      .slice(0, 32);
  }

  protected read(id: string): Row | undefined {
    return this.#get.get(id) as Row | undefined;
  }

  /** Writes rows (id, column values in order) in one transaction. */
  protected write(rows: readonly (readonly unknown[])[]): void {
    this.#db.transaction(() => rows.forEach((r) => this.#put.run(...r)))();
  }

  close(): void {
    this.#db.close();
  }
}
