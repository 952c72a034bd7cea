// crashTest(): power cuts over a workload, checked by the durability oracle (oracle.ts).
//
// Each run gets a fresh disk and filesystem, seeded with the run's seed, and the inline executor,
// so a run is a pure function of (seed, cut point). A cut point k means "the power goes just
// before the device's k-th request takes effect" (its data moved, or a flush made things durable,
// then reported complete); k = total + 1 is after the workload has finished. A first, uncut
// execution counts the requests and where the flushes and FUA writes are; then the
// workload runs again and the power is cut at the chosen point(s). After the cut the disk is
// mounted again and `check` (by default the oracle's) decides what was lost.
import { Disk, type DiskOptions } from "../disk.js";
import { DioError } from "../errors.js";
import { Prng } from "../prng.js";
import { mkfs, mount, SEMANTICS, type Filesystem, type Semantics } from "../fs/filesystem.js";
import { O_RDONLY } from "../constants.js";
import { DurabilityOracle } from "./oracle.js";

/** What a workload and a check get. */
export interface CrashTestContext {
  disk: Disk;
  fs: Filesystem;
  /** The run's seed, and a PRNG seeded with it, for workloads that make random choices. */
  seed: number;
  random: () => number;
}

export interface CrashTestOptions {
  workload: (ctx: CrashTestContext) => Promise<void>;
  /** Runs after the remount; throws to report a violation. Default: the durability oracle. */
  check?: (ctx: CrashTestContext) => Promise<void>;
  semantics?: Semantics;
  disk?: Partial<DiskOptions>;
  /** First seed; run i uses seed + i. Default 1. */
  seed?: number;
  /** Default 100. */
  runs?: number;
  /** "random" (default): one cut at a random point of each run. "every-flush": a cut before and
   *  after each flush completion, and one after the end, up to `budget` cuts per run. */
  points?: "random" | "every-flush";
  /** Cut only at this point (replays one reported violation exactly; with runs 1). */
  cut?: number;
  /** The most cuts one run explores with "every-flush". Default 64. */
  budget?: number;
  /** Power cuts tear in-flight writes at sector granularity. Default false. */
  torn?: boolean;
  /** Milliseconds a workload may take to settle after the cut, or a check to return. Default 10000. */
  timeoutMs?: number;
  /** Called after each cut with the progress so far. */
  onProgress?: (done: { runs: number; cutPoints: number; lost: number }) => void;
}

export interface CrashViolation { seed: number; cutPoint: number; file?: string; offset?: number; length?: number; message: string }
export interface CrashWorkloadError { seed: number; cutPoint?: number; message: string; stack?: string }
export interface CrashReport {
  runs: number;
  cutPoints: number;
  /** Writes whose durability was promised before the cut (summed over every cut). */
  acknowledgedWrites: number;
  /** Of those, the ones whose data did not survive. */
  lost: number;
  violations: CrashViolation[];
  /** Workloads that failed before the power was cut (not durability violations). */
  workloadErrors: CrashWorkloadError[];
  semantics: Semantics;
}

/** A workload error, kept apart from what the power cut caused. */
class WorkloadFailure extends Error {}

class TimeoutError extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function checkOptions(opts: CrashTestOptions): void {
  const bad = (message: string): never => { throw new DioError("EINVAL", "crashtest", message); };
  if (opts === null || typeof opts !== "object") bad("options must be an object");
  if (typeof opts.workload !== "function") bad("workload must be an async function");
  if (opts.check !== undefined && typeof opts.check !== "function") bad("check must be a function");
  if (opts.semantics !== undefined && !SEMANTICS.includes(opts.semantics)) bad(`semantics ${String(opts.semantics)} must be one of ${SEMANTICS.join(", ")}`);
  for (const [name, value, min] of [["runs", opts.runs, 1], ["seed", opts.seed, 0], ["cut", opts.cut, 1], ["budget", opts.budget, 1], ["timeoutMs", opts.timeoutMs, 1]] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < min)) bad(`${name} ${String(value)} must be an integer of at least ${min}`);
  }
  if (opts.points !== undefined && opts.points !== "random" && opts.points !== "every-flush") bad(`points ${String(opts.points)} must be "random" or "every-flush"`);
}

interface Execution {
  completions: number;
  /** Request numbers (1-based) that were flushes or FUA writes: the durability points. */
  flushes: number[];
}

/** Power cuts over `opts.workload`; see the module comment and API.md. */
export async function crashTest(opts: CrashTestOptions): Promise<CrashReport> {
  checkOptions(opts);
  const semantics = opts.semantics ?? "seed";
  const runs = opts.runs ?? 100;
  const firstSeed = opts.seed ?? 1;
  const timeoutMs = opts.timeoutMs ?? 10000;
  const report: CrashReport = { runs: 0, cutPoints: 0, acknowledgedWrites: 0, lost: 0, violations: [], workloadErrors: [], semantics };

  const fresh = async (seed: number): Promise<{ disk: Disk; fs: Filesystem; oracle: DurabilityOracle; ctx: CrashTestContext }> => {
    const disk = await Disk.create({ size: 16 << 20, arenaBytes: 4 << 20, cacheBytes: 2 << 20, ...opts.disk, seed, executor: "inline" });
    await mkfs(disk, { blockSize: 4096, inodes: 64 });
    const fs = await mount(disk, { semantics });
    const oracle = new DurabilityOracle(() => disk.device.now);
    fs.recorder = oracle;
    const prng = new Prng(seed ^ 0x5bd1e995);
    return { disk, fs, oracle, ctx: { disk, fs, seed, random: () => prng.next() } };
  };

  /** Runs the workload, cutting the power before completion `cutAt` (or never). */
  const execute = async (seed: number, cutAt: number | undefined): Promise<{ exec: Execution; env: Awaited<ReturnType<typeof fresh>>; cut: boolean }> => {
    const env = await fresh(seed);
    const exec: Execution = { completions: 0, flushes: [] };
    let cut = false;
    env.disk.device.beforeCompletion = (request) => {
      exec.completions++;
      // Durability points: flushes, and FUA writes (iomap's write-through has no flush).
      if (request.kind === "flush" || (request.kind === "write" && request.fua)) exec.flushes.push(exec.completions);
      if (!cut && exec.completions === cutAt) {
        cut = true;
        void env.disk.crash({ torn: opts.torn === true });
      }
    };
    try {
      await withTimeout(opts.workload(env.ctx), timeoutMs, "the workload");
    } catch (error) {
      // After the cut, failures (EIO) are the cut's doing; before it, the workload's own. A
      // workload that never settles is reported either way: something it waited for never came.
      if (!cut || error instanceof TimeoutError) {
        env.disk.device.beforeCompletion = undefined;
        await env.disk.close().catch(() => undefined);
        const when = cut ? " after the power cut" : "";
        throw new WorkloadFailure(`${(error as Error)?.message ?? String(error)}${when}`, { cause: error });
      }
    }
    if (!cut && cutAt !== undefined) {
      // The cut point lies past the workload's end: cut now, with everything it left behind.
      cut = true;
      await env.disk.crash({ torn: opts.torn === true });
    }
    env.disk.device.beforeCompletion = undefined;
    return { exec, env, cut };
  };

  for (let run = 0; run < runs; run++) {
    const seed = firstSeed + run;
    let points: number[];
    try {
      if (opts.cut !== undefined) {
        points = [opts.cut];
      } else {
        const dry = await execute(seed, undefined);
        await dry.env.disk.close();
        const total = dry.exec.completions;
        if (opts.points === "every-flush") {
          const set = new Set<number>();
          for (const k of dry.exec.flushes) {
            set.add(k);
            set.add(k + 1);
          }
          set.add(total + 1);
          points = [...set].sort((a, b) => a - b);
          const budget = opts.budget ?? 64;
          if (points.length > budget) {
            // Keep an even spread, always with the end.
            const step = points.length / budget;
            points = Array.from({ length: budget }, (_, i) => points[Math.floor(i * step)]);
            points[points.length - 1] = total + 1;
          }
        } else {
          const pick = new Prng(seed * 0x9e3779b1 + 17);
          points = [1 + (pick.nextU32() % (total + 1))];
        }
      }
    } catch (error) {
      report.workloadErrors.push(workloadError(error, seed));
      report.runs++;
      continue;
    }
    for (const cutPoint of points) {
      try {
        const { env } = await execute(seed, cutPoint);
        await judge(env, seed, cutPoint);
      } catch (error) {
        report.workloadErrors.push(workloadError(error, seed, cutPoint));
      }
      report.cutPoints++;
      opts.onProgress?.({ runs: report.runs, cutPoints: report.cutPoints, lost: report.lost });
    }
    report.runs++;
  }
  return report;

  async function judge(env: Awaited<ReturnType<typeof fresh>>, seed: number, cutPoint: number): Promise<void> {
    const { disk, oracle } = env;
    const durable = oracle.durableWrites();
    report.acknowledgedWrites += durable.length;
    try {
      let fs: Filesystem;
      try {
        fs = await mount(disk, { semantics });
      } catch (error) {
        report.lost += durable.length;
        report.violations.push({ seed, cutPoint, message: `the filesystem does not mount after the cut: ${(error as Error).message}` });
        return;
      }
      const prng = new Prng(seed ^ 0x5bd1e995);
      const ctx: CrashTestContext = { disk, fs, seed, random: () => prng.next() };
      if (opts.check !== undefined) {
        try {
          await withTimeout(opts.check(ctx), timeoutMs, "the check");
        } catch (error) {
          report.violations.push({ seed, cutPoint, message: `check failed: ${(error as Error)?.message ?? String(error)}` });
        }
        return;
      }
      const found = await oracle.check(async (file) => readWhole(fs, file));
      report.lost += new Set(found.map((v) => v.write)).size;
      for (const v of found) report.violations.push({ seed, cutPoint, file: v.file, offset: v.offset, length: v.length, message: v.message });
    } finally {
      await disk.close();
    }
  }
}

function workloadError(error: unknown, seed: number, cutPoint?: number): CrashWorkloadError {
  const cause = error instanceof WorkloadFailure ? (error.cause as Error | undefined) : (error as Error | undefined);
  const message = error instanceof WorkloadFailure ? error.message : cause?.message ?? String(error);
  return { seed, cutPoint, message, stack: cause?.stack };
}

/** A whole file read back through the page cache, or null if it does not exist. */
async function readWhole(fs: Filesystem, file: string): Promise<Uint8Array | null> {
  let fh;
  try {
    fh = await fs.open(file, O_RDONLY);
  } catch (error) {
    if (error instanceof DioError && error.code === "ENOENT") return null;
    throw error;
  }
  try {
    const { size } = await fh.stat();
    const out = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await fh.read(out, done, size - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return out.subarray(0, done);
  } finally {
    await fh.close();
  }
}
