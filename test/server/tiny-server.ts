/**
 * A real mac-lm server process with the tiny MAC (test/mac/tiny-mac.ts) instead of the real checkpoint, for the
 * tests that need a process (SIGKILL, SIGTERM): `tsx tiny-server.ts <bank dir> [token]`. Prints
 * "listening <url>" on stdout once it accepts requests; SIGTERM drains and exits 0 (src/server/serve.ts).
 */
import { Mac } from "../../src/api/mac.js";
import { serve } from "../../src/server/serve.js";
import { tinyMac } from "../mac/tiny-mac.js";

const [bankDir, token] = [process.argv[2]!, process.argv[3]];
const model = tinyMac({ seed: 3 });
const mac = Mac.fromModel(model, { bank: bankDir, ownsModel: true });
// TINY_TOKEN_DELAY_MS: slow each streamed token down, so that a test can act while an answer is in flight.
const delay = Number(process.env.TINY_TOKEN_DELAY_MS ?? 0);
if (delay > 0) {
  const stream = mac.stream.bind(mac);
  mac.stream = (question, opts) => {
    const s = stream(question, opts);
    return {
      result: s.result,
      async *[Symbol.asyncIterator]() {
        for await (const piece of s) {
          await new Promise((r) => setTimeout(r, delay));
          yield piece;
        }
      },
    };
  };
}
await serve(mac, {
  port: 0,
  host: "127.0.0.1",
  ...(token ? { token } : {}),
  limits: { maxNewTokens: 6 },
  defaultMaxNewTokens: 4, // the tiny base LM has 32 positions
  onListening: (url) => process.stdout.write(`listening ${url}\n`),
});
