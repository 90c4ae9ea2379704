import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { binaryByteOffset, checkNonBlank, decodeText, invalidUtf8Offset, readTextFile } from "./text.js";

const dir = mkdtempSync(join(tmpdir(), "maclm-text-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("documents are text", () => {
  it("finds the first invalid UTF-8 byte (overlong, surrogate, out of range, cut, stray continuation)", () => {
    const valid = Buffer.from("plain, café, 東京, 🎉\n");
    expect(invalidUtf8Offset(valid)).toBe(-1);
    expect(decodeText(valid, "f")).toBe("plain, café, 東京, 🎉\n");
    const cases: [number[], number][] = [
      [[0x61, 0xc0, 0xaf], 1], // overlong "/"
      [[0x61, 0x62, 0xe0, 0x80, 0xaf], 2], // overlong 3-byte
      [[0xed, 0xa0, 0x80], 0], // surrogate U+D800
      [[0x61, 0xf4, 0x90, 0x80, 0x80], 1], // > U+10FFFF
      [[0x61, 0xe2, 0x82], 1], // cut at the end
      [[0x61, 0x80], 1], // stray continuation byte
      [[0x43, 0x61, 0x66, 0xe9], 3], // Latin-1 "Café"
    ];
    for (const [bytes, at] of cases) expect(invalidUtf8Offset(Uint8Array.from(bytes)), bytes.join(",")).toBe(at);
  });

  it("refuses control bytes as binary, names file and offset; latin1 transcodes; a BOM is dropped", () => {
    expect(binaryByteOffset(Buffer.from("tab\there\r\nform\f feed\x1b[0m"))).toBe(-1);
    expect(() => decodeText(Buffer.from("ok\0no"), "a.bin")).toThrow(
      "a.bin is not a text file: control byte 0x00 at byte offset 2",
    );
    expect(() => decodeText(Buffer.from([0x43, 0x61, 0x66, 0xe9]), "l.txt")).toThrow(
      "l.txt is not valid UTF-8: byte 0xe9 at byte offset 3; if it is Latin-1 text, pass --encoding latin1",
    );
    expect(decodeText(Buffer.from([0x43, 0x61, 0x66, 0xe9]), "l.txt", "latin1")).toBe("Café");
    expect(decodeText(Buffer.from("\ufeffhello"), "b.txt")).toBe("hello");
  });

  it("reads files with errors that name the path; blank text is refused", () => {
    expect(() => readTextFile(join(dir, "none.txt"), "utf8", "--file")).toThrow(
      `--file ${join(dir, "none.txt")} does not exist; check the path`,
    );
    expect(() => readTextFile(dir, "utf8", "--file")).toThrow(`--file ${dir} is a folder`);
    writeFileSync(join(dir, "a.txt"), "fine\n");
    expect(readTextFile(join(dir, "a.txt"))).toBe("fine\n");
    expect(() => checkNonBlank("", "question 1")).toThrow("question 1 is empty");
    expect(() => checkNonBlank(" \n\t", "question 2")).toThrow("question 2 is only whitespace");
    expect(checkNonBlank(" x ", "q")).toBe(" x ");
  });
});
