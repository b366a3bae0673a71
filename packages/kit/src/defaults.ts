/**
 * Every default the kit applies, once: `createServer`, the bin flags and their `--help` read them
 * from here, so a changed default cannot drift between the library and the CLI.
 */
export const kitDefaults = {
  /** Per-call time limit unless a tool sets its own. */
  timeoutMs: 120_000,
  /** The last guard on a result's size; a tool's own budgets keep far below it. */
  maxResultBytes: 4 * 1024 * 1024,
  /** The most files a preview lists (a recursive delete is listed file by file up to this). */
  previewMaxFiles: 1000,
  /** How long an idempotency claim stays valid without a heartbeat. */
  leaseMs: 30_000,
  /** How long a completed result is kept for retries. */
  idempotencyTtlHours: 24,
  /** How long a concurrent duplicate waits for the first call before IN_PROGRESS. */
  waitMs: 30_000,
  /** How long shutdown waits for cancelled calls to settle before killing what is left. */
  shutdownGraceMs: 3_000,
  /** Between SIGTERM and SIGKILL to a child's process group. */
  killGraceMs: 2_000,
  /** Streamable HTTP port. */
  port: 7300,
  /** Streamable HTTP interface. */
  host: '127.0.0.1',
} as const;
