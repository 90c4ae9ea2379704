// Using mac-lm from code: adapt a model to two documents, ask with sources, stream an answer, forget a document.
//
//   npm run build:ts                      # once, on a clone (an installed package ships dist/)
//   node examples/use-from-code.mjs [checkpoint] [bank folder]
//
// The checkpoint defaults to the shipped one (its base LM, SmolLM2-135M-Instruct, comes from the model cache:
// scripts/fetch-models.sh or `mac-lm pull smollm2-135m-instruct` and `mac-lm pull all-minilm-l6-v2`).
import process from "node:process";
import { Mac } from "mac-lm";

const print = (...parts) => process.stdout.write(`${parts.join(" ")}\n`);

const checkpoint = process.argv[2] ?? "checkpoints/mac-extractive-qa";
const bank = process.argv[3] ?? "bank-example";

const mac = await Mac.load(checkpoint, { bank });
try {
  // Returns once the memory entries are durable; adapting an id again replaces its entry.
  await mac.adapt([
    {
      id: "quellin",
      title: "Zorvath Quellin",
      text: "Zorvath Quellin was a glassmaker born in Mirefall in 1843. He founded the Kelt company.",
    },
    { id: "kelt", title: "Kelt company", text: "The Kelt company makes glass boats in the harbour of Oslar." },
  ]);
  print(
    "documents:",
    mac
      .documents()
      .map((d) => `${d.id} (${d.chars} chars)`)
      .join(", "),
  );

  const question = "Where was Zorvath Quellin born?";
  const { answer, sources, timings } = await mac.ask(question, { maxNewTokens: 16 });
  print(`Q: ${question}\nA: ${answer}  (${timings.totalMs.toFixed(0)} ms)`);
  for (const s of sources) print(`   ${(100 * s.weight).toFixed(1)} %  ${s.title}: ${s.snippet}`);

  process.stdout.write("streamed: ");
  for await (const piece of mac.stream("What does the Kelt company make?", { maxNewTokens: 16 }))
    process.stdout.write(piece);
  process.stdout.write("\n");

  await mac.forget("kelt"); // durable: its entry and text are gone from the bank
  print(
    "after forget:",
    mac
      .documents()
      .map((d) => d.id)
      .join(", "),
  );
} finally {
  await mac.close(); // frees the model and closes the bank
}
