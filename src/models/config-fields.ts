/**
 * Typed reads of Hugging Face config.json fields: a missing field takes its default, a field of the wrong type is
 * an error naming the file and the field (never a silent NaN deep inside a model).
 */
import { MacLmError } from "../errors.js";

export type Json = Record<string, unknown>;

export class ConfigReader {
  constructor(
    readonly json: Json,
    /** Where the config came from, for error messages (a path). */
    readonly source: string,
  ) {}

  private bad(key: string, what: string): MacLmError {
    const v = this.json[key];
    const got = v === undefined ? "" : `, got ${JSON.stringify(v)}`;
    return new MacLmError("MACLM_BAD_CHECKPOINT", `${this.source}: field "${key}" ${what}${got}`);
  }

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  /** A finite number (the default when absent or null). */
  number(key: string, fallback?: number): number {
    const v = this.json[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw this.bad(key, "is required");
      return fallback;
    }
    if (typeof v !== "number" || !Number.isFinite(v)) throw this.bad(key, "must be a number");
    return v;
  }

  /** A positive integer (a dimension or a count). */
  dim(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v) || v <= 0) throw this.bad(key, "must be a positive integer");
    return v;
  }

  /** A probability in [0, 1). */
  prob(key: string, fallback: number): number {
    const v = this.number(key, fallback);
    if (!(v >= 0 && v < 1)) throw this.bad(key, "must be in [0, 1)");
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.json[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") throw this.bad(key, "must be true or false");
    return v;
  }

  string(key: string, fallback: string): string {
    const v = this.json[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string") throw this.bad(key, "must be a string");
    return v;
  }

  /** A token id: an integer, the first of a list of integers (Llama 3's eos), or null. */
  tokenId(key: string): number | null {
    const v = this.json[key];
    if (v === undefined || v === null) return null;
    const first = Array.isArray(v) ? (v[0] as unknown) : v;
    if (first === undefined) return null;
    if (typeof first !== "number" || !Number.isInteger(first) || first < 0) throw this.bad(key, "must be a token id");
    return first;
  }

  /** A nested object (e.g. rope_parameters), or null. */
  object(key: string): Json | null {
    const v = this.json[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== "object" || Array.isArray(v)) throw this.bad(key, "must be an object");
    return v as Json;
  }
}
