/**
 * /metrics in the Prometheus text exposition format (version 0.0.4): request counts by route and status, ask
 * latency as a histogram, the writer's batches and documents, the bank's size and the process's memory. A handful
 * of series, so they are kept here rather than through a metrics library.
 */
const BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const label = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly askCounts = new Map<string, number[]>();
  private readonly askSums = new Map<string, number>();

  request(method: string, route: string, status: number): void {
    const key = `method="${label(method)}",route="${label(route)}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  ask(memory: boolean, seconds: number): void {
    const key = memory ? "true" : "false";
    const counts = this.askCounts.get(key) ?? new Array<number>(BUCKETS.length + 1).fill(0);
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) counts[i]!++;
    });
    counts[BUCKETS.length]!++;
    this.askCounts.set(key, counts);
    this.askSums.set(key, (this.askSums.get(key) ?? 0) + seconds);
  }

  render(gauges: Record<string, { help: string; value: number; type?: "gauge" | "counter" }>): string {
    const out: string[] = [];
    out.push("# HELP maclm_http_requests_total HTTP requests by method, route and status.");
    out.push("# TYPE maclm_http_requests_total counter");
    for (const [k, v] of this.requests) out.push(`maclm_http_requests_total{${k}} ${v}`);
    out.push("# HELP maclm_ask_duration_seconds Time to answer a question (whole answer, streamed or not).");
    out.push("# TYPE maclm_ask_duration_seconds histogram");
    for (const [memory, counts] of this.askCounts) {
      BUCKETS.forEach((b, i) =>
        out.push(`maclm_ask_duration_seconds_bucket{memory="${memory}",le="${b}"} ${counts[i]}`),
      );
      out.push(`maclm_ask_duration_seconds_bucket{memory="${memory}",le="+Inf"} ${counts[BUCKETS.length]}`);
      out.push(`maclm_ask_duration_seconds_sum{memory="${memory}"} ${this.askSums.get(memory)}`);
      out.push(`maclm_ask_duration_seconds_count{memory="${memory}"} ${counts[BUCKETS.length]}`);
    }
    for (const [name, g] of Object.entries(gauges)) {
      out.push(`# HELP ${name} ${g.help}`);
      out.push(`# TYPE ${name} ${g.type ?? "gauge"}`);
      out.push(`${name} ${g.value}`);
    }
    return `${out.join("\n")}\n`;
  }
}
