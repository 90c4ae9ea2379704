/**
 * Running the server: listen, report where, and on SIGTERM/SIGINT drain — stop accepting, finish the requests in
 * flight (answers being generated, writes being made durable), then close the Mac — and exit. A second signal
 * exits at once.
 */
import type { Mac } from "../api/mac.js";
import { type MacServer, type ServerOptions, buildServer } from "./app.js";

export interface ServeOptions extends ServerOptions {
  port: number;
  host: string;
  /** Install SIGTERM/SIGINT handlers that drain and exit (default true). */
  handleSignals?: boolean;
  /** Called with the address once listening. */
  onListening?: (url: string) => void;
  /** Where progress is told (default stderr). */
  log?: (line: string) => void;
}

export interface RunningServer extends MacServer {
  url: string;
  /** Drains and closes the Mac (what a signal does, without exiting). */
  shutdown(): Promise<void>;
}

export async function serve(mac: Mac, opts: ServeOptions): Promise<RunningServer> {
  const server = buildServer(mac, opts);
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const url = await server.app.listen({ port: opts.port, host: opts.host });
  let stopping: Promise<void> | null = null;
  const shutdown = (): Promise<void> =>
    (stopping ??= (async () => {
      await server.drain();
      await mac.close();
    })());
  if (opts.handleSignals ?? true) {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log(`mac-lm serve: ${signal} again, exiting now`);
        process.exit(1);
      }
      log(`mac-lm serve: ${signal}: draining (${server.writer.depth} queued writes)`);
      shutdown().then(
        () => {
          log("mac-lm serve: drained, bye");
          process.exit(0);
        },
        (e: unknown) => {
          log(`mac-lm serve: error while draining: ${String(e)}`);
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  }
  opts.onListening?.(url);
  return { ...server, url, shutdown };
}
