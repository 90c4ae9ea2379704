/**
 * Documents and questions are text. Bytes read from a file are checked before anything is amortized: invalid UTF-8
 * and binary content (control bytes that text does not hold) are refused with the file and the byte offset, rather
 * than stored as U+FFFD or as entries made from an executable. Other encodings are transcoded only when asked for
 * (`latin1`). Empty and whitespace-only documents and questions are refused.
 */
import { readFileSync, statSync } from "node:fs";
import { MacLmError } from "../errors.js";

export type TextEncoding = "utf8" | "latin1";
export const TEXT_ENCODINGS: readonly TextEncoding[] = ["utf8", "latin1"];

/** Byte offset of the first invalid UTF-8 sequence in `b`, or -1 (overlong forms, surrogates and > U+10FFFF are invalid). */
export function invalidUtf8Offset(b: Uint8Array): number {
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let cp: number;
    if (c >= 0xc2 && c <= 0xdf) [need, min, cp] = [1, 0x80, c & 0x1f];
    else if (c >= 0xe0 && c <= 0xef) [need, min, cp] = [2, 0x800, c & 0x0f];
    else if (c >= 0xf0 && c <= 0xf4) [need, min, cp] = [3, 0x10000, c & 0x07];
    else return i;
    for (let k = 1; k <= need; k++) {
      const cc = b[i + k];
      if (cc === undefined || (cc & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** Offset of the first byte that text does not contain (C0 controls other than tab, newlines, form feed, ESC), or -1. */
export function binaryByteOffset(b: Uint8Array): number {
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0b && c !== 0x0c && c !== 0x0d && c !== 0x1b) return i;
    if (c === 0x7f) return i;
  }
  return -1;
}

const hex = (c: number): string => `0x${c.toString(16).padStart(2, "0")}`;

/**
 * Decodes the bytes of `file` as text. UTF-8 (a leading byte-order mark is dropped) is checked strictly; latin1
 * maps each byte to U+0000–U+00FF. Either way a control byte means the file is not text.
 */
export function decodeText(bytes: Uint8Array, file: string, encoding: TextEncoding = "utf8"): string {
  const bin = binaryByteOffset(bytes);
  if (bin >= 0)
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `${file} is not a text file: control byte ${hex(bytes[bin]!)} at byte offset ${bin} (documents must be text)`,
    );
  if (encoding === "latin1") return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
  const bad = invalidUtf8Offset(bytes);
  if (bad >= 0)
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `${file} is not valid UTF-8: byte ${hex(bytes[bad]!)} at byte offset ${bad}; if it is Latin-1 text, pass --encoding latin1 to transcode it`,
    );
  const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, bytes.byteLength - start).toString("utf8");
}

/** Refuses an empty or whitespace-only document or question; `what` names it ("document 3 of notes.txt"). */
export function checkNonBlank(text: string, what: string): string {
  if (text.trim().length === 0)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${what} is ${text.length === 0 ? "empty" : "only whitespace"}`);
  return text;
}

/** Reads a text file given on the command line (`flag` names the option in messages) and decodes it (decodeText). */
export function readTextFile(file: string, encoding: TextEncoding = "utf8", flag = "the file"): string {
  let bytes: Buffer;
  try {
    if (statSync(file).isDirectory())
      throw new MacLmError("MACLM_BAD_ARGUMENT", `${flag} ${file} is a folder; give the path of a text file`);
    bytes = readFileSync(file);
  } catch (e) {
    if (e instanceof MacLmError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "does not exist; check the path"
        : code === "EACCES" || code === "EPERM"
          ? "cannot be read (permission denied); check its permissions"
          : `cannot be read (${(e as Error).message})`;
    throw new MacLmError("MACLM_BAD_FILE", `${flag} ${file} ${why}`, { cause: e });
  }
  return decodeText(bytes, file, encoding);
}
