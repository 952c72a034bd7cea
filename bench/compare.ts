// bench/compare: the same fio jobs three ways, on this machine, in one run:
//   1. dioemu (the in-memory emulator, `dioemu bench`);
//   2. Linux's fio on a tmpfs file (/dev/shm), when fio is installed (`apt-get install fio`), with
//      io_uring in place of libaio as a second row for the AIO jobs;
//   3. Node's own `fs` on a tmpfs file opened with the job's O_DIRECT/O_DSYNC flags where the
//      platform allows (writeSync one at a time, or `iodepth` concurrent promises on libuv's pool).
// It prints IOPS and p99 completion latency side by side with the ratio dioemu / Linux; for a job
// of 1 MiB writes, also the bandwidth of wasm memory.copy moving the same bytes in the same process.
// With --repeat N the whole table runs N times in a row, and the last lines give the medians of the
// figures the benchmark issue sets targets for.
// usage: bench/compare [--runtime S] [--repeat N] [JOBFILE...]
import { spawnSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, promises as fsp, readFileSync, rmSync, writeSync, type PathLike } from "node:fs";
import { join } from "node:path";
import { parseJobFile, type JobSpec } from "../host/bench/jobfile.js";
import { releaseResults, runJob } from "../host/bench/runner.js";
import { shippedJobFiles } from "../host/bench/command.js";
import { Disk } from "../host/index.js";

const args = process.argv.slice(2);
let runtime = 3;
let repeat = 1;
const files: string[] = [];
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === "--runtime" || arg === "--repeat") {
    const value = Number(args[++i]);
    const ok = arg === "--runtime" ? value > 0 : Number.isInteger(value) && value >= 1;
    if (!ok) {
      console.error(`bench/compare: ${arg} ${String(args[i])} must be ${arg === "--runtime" ? "a positive number of seconds" : "a positive integer"}`);
      process.exit(2);
    }
    if (arg === "--runtime") runtime = value;
    else repeat = value;
  } else if (arg.startsWith("--")) {
    console.error(`bench/compare: unknown option ${arg} (usage: bench/compare [--runtime S] [--repeat N] [JOBFILE...])`);
    process.exit(2);
  } else {
    files.push(arg);
  }
}
const jobFiles = files.length > 0 ? files : shippedJobFiles();

interface Figure { iops: number; p99us: number; mibs: number }
const fmt = (n: number, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

async function dioemu(spec: JobSpec): Promise<Figure> {
  const r = await runJob({ ...spec, runtime: spec.time_based ? runtime : spec.runtime }, 0, { semantics: "seed", executor: "worker" });
  const seconds = r.runtimeMs / 1000;
  const ios = r.read.ios + r.write.ios;
  const main = r.write.ios >= r.read.ios ? r.write : r.read;
  const figure = { iops: ios / seconds, p99us: main.clat.getValueAtPercentile(99) / 1000, mibs: (r.read.bytes + r.write.bytes) / seconds / (1 << 20) };
  releaseResults([r]);
  return figure;
}

/**
 * wasm memory.copy moving what a job of large writes moves: `size` bytes in `bs` pieces from one
 * source buffer into a region the file's size (the same bytes, the same piece size, the same
 * footprint), in this process. MiB/s, the median of 15 rounds.
 */
async function memoryCopyMiBs(spec: JobSpec): Promise<number> {
  const disk = await Disk.create({ size: 1 << 20, cacheBytes: 16384, arenaBytes: spec.size + spec.bs + (1 << 20) });
  try {
    const src = disk.alloc(spec.bs);
    const dst = disk.alloc(spec.size);
    src.fill(0x5a);
    dst.fill(0); // first touch outside the timing, as the emulator's memory is by the layout
    const pieces = Math.floor(spec.size / spec.bs);
    const times: number[] = [];
    for (let round = 0; round < 15; round++) {
      const t = performance.now();
      const status = disk.core.bench_copy(dst.byteOffset, src.byteOffset, spec.bs, pieces, spec.size);
      times.push(performance.now() - t);
      if (status !== 0) throw new Error(`bench_copy failed with ${status}`);
    }
    times.sort((a, b) => a - b);
    return (pieces * spec.bs) / (1 << 20) / (times[7] / 1000);
  } finally {
    await disk.close();
  }
}

function haveFio(): boolean {
  return spawnSync("fio", ["--version"], { encoding: "utf8" }).status === 0;
}

function fio(file: string, engine: string | undefined, dir: string): Figure | null {
  let text = readFileSync(file, "utf8");
  if (engine !== undefined) text = text.replace(/^ioengine=.*$/m, `ioengine=${engine}`);
  text = text.replace(/^runtime=.*$/m, `runtime=${runtime}`);
  const jobPath = join(dir, "job.fio");
  const filePath = join(dir, "data");
  // The data file on tmpfs: the same name for every job (fio lays it out first).
  text = `[global]\nfilename=${filePath}\n${text.replace(/^filename=.*$/gm, "")}`;
  rmSync(filePath, { force: true });
  writeSync(openSync(jobPath, "w"), text);
  const run = spawnSync("fio", [jobPath, "--output-format=json"], { encoding: "utf8", cwd: dir }); // fio leaves verify state files in its cwd
  if (run.status !== 0) return null;
  const job = JSON.parse(run.stdout).jobs[0];
  const w = job.write;
  const r = job.read;
  const main = w.total_ios >= r.total_ios ? w : r;
  const seconds = Math.max(w.runtime, r.runtime) / 1000;
  return { iops: w.iops + r.iops, p99us: (main.clat_ns.percentile?.["99.000000"] ?? 0) / 1000, mibs: (w.io_bytes + r.io_bytes) / seconds / (1 << 20) };
}

/** Node's own fs: the job's pattern on a tmpfs file with O_DIRECT (if accepted) and O_DSYNC/O_SYNC. */
async function node(spec: JobSpec, dir: string): Promise<Figure | null> {
  if (spec.rw.includes("read") && spec.rw !== "randrw" && spec.rw !== "readwrite" && spec.rw !== "read" && spec.rw !== "randread") return null;
  const path: PathLike = join(dir, "node-data");
  const size = spec.size;
  const flagsFor = (direct: boolean) => constants.O_RDWR | constants.O_CREAT | (direct ? (constants.O_DIRECT ?? 0) : 0) |
    (spec.sync === "dsync" ? constants.O_DSYNC : spec.sync === "sync" ? constants.O_SYNC : 0);
  // Lay out the file.
  const layout = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC);
  const chunk = Buffer.alloc(1 << 20, 1);
  for (let at = 0; at < size; at += chunk.length) writeSync(layout, chunk, 0, Math.min(chunk.length, size - at), at);
  closeSync(layout);
  let fd: number;
  try {
    fd = openSync(path, flagsFor(spec.direct));
  } catch {
    fd = openSync(path, flagsFor(false)); // the platform refused O_DIRECT: say so below
  }
  const buf = Buffer.alloc(spec.bs, 7);
  const blocks = Math.floor(size / spec.bs);
  let x = 12345;
  const next = () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return spec.rw.startsWith("rand") ? (x % blocks) * spec.bs : ((x >>> 0) % blocks) * spec.bs;
  };
  let seq = 0;
  const offset = () => (spec.rw.startsWith("rand") ? next() : (seq++ % blocks) * spec.bs);
  const isRead = () => spec.rw === "read" || spec.rw === "randread" || ((spec.rw === "randrw" || spec.rw === "readwrite") && next() % 100 < spec.rwmixread);
  const lat: number[] = [];
  const t0 = performance.now();
  const limit = (spec.time_based ? runtime : spec.runtime || Infinity) * 1000;
  let ios = 0;
  const total = spec.time_based ? Infinity : blocks;
  try {
    if (spec.ioengine !== "libaio" || spec.iodepth === 1) {
      const { readSync } = await import("node:fs");
      while (ios < total && performance.now() - t0 < limit) {
        const t = performance.now();
        if (isRead()) readSync(fd, buf, 0, spec.bs, offset());
        else writeSync(fd, buf, 0, spec.bs, offset());
        lat.push(performance.now() - t);
        ios++;
      }
    } else {
      const handle = await fsp.open(path, flagsFor(false) & ~constants.O_CREAT);
      await handle.close();
      const fh = await fsp.open(path, constants.O_RDWR);
      const one = async (): Promise<void> => {
        while (ios < total && performance.now() - t0 < limit) {
          ios++;
          const b = Buffer.alloc(spec.bs, 7);
          const t = performance.now();
          if (isRead()) await fh.read(b, 0, spec.bs, offset());
          else await fh.write(b, 0, spec.bs, offset());
          lat.push(performance.now() - t);
        }
      };
      await Promise.all(Array.from({ length: spec.iodepth }, one));
      await fh.close();
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  const seconds = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { iops: ios / seconds, p99us: lat[Math.floor(lat.length * 0.99)] * 1000, mibs: (ios * spec.bs) / seconds / (1 << 20) };
}

const fioAvailable = haveFio();
const dir = mkdtempSync("/dev/shm/dioemu-compare-");
console.log(`bench/compare: ${new Date().toISOString()}, node ${process.version}, runtime ${runtime} s per job, ${repeat} run${repeat > 1 ? "s" : ""}, fio ${fioAvailable ? spawnSync("fio", ["--version"], { encoding: "utf8" }).stdout.trim() : "not installed"}`);

/** Per run, the figures the targets are about. */
interface RunFigures { qd32?: number; ioUringQd32?: number; dsyncQd32?: number; seqMiBs?: number; copyMiBs?: number }
const runs: RunFigures[] = [];
try {
  for (let run = 1; run <= repeat; run++) {
    if (repeat > 1) console.log(`\nrun ${run} of ${repeat}`);
    console.log("job                        dioemu IOPS  p99 us    Linux fio IOPS  p99 us  (engine)    node fs IOPS  p99 us   dioemu/Linux");
    const figures: RunFigures = {};
    runs.push(figures);
    for (const file of jobFiles) {
      for (const spec of parseJobFile(readFileSync(file, "utf8"), file)) {
        const ours = await dioemu(spec);
        const engines = spec.ioengine === "libaio" ? ["libaio", "io_uring"] : [undefined];
        const theirs = fioAvailable ? engines.map((e) => ({ engine: e ?? spec.ioengine, figure: fio(file, e, dir) })) : [];
        const mine = await node(spec, dir);
        const linux = theirs.filter((t) => t.figure !== null).sort((a, b) => b.figure!.iops - a.figure!.iops)[0];
        const cells = [
          spec.name.padEnd(26),
          fmt(ours.iops).padStart(12), fmt(ours.p99us, 1).padStart(8),
          linux !== undefined ? fmt(linux.figure!.iops).padStart(16) : "n/a".padStart(16),
          linux !== undefined ? fmt(linux.figure!.p99us, 1).padStart(8) : "".padStart(8),
          `(${linux?.engine ?? "-"})`.padEnd(11),
          mine !== null ? fmt(mine.iops).padStart(12) : "n/a".padStart(12),
          mine !== null ? fmt(mine.p99us, 1).padStart(8) : "".padStart(8),
          linux !== undefined ? fmt(ours.iops / linux.figure!.iops, 3).padStart(14) : "".padStart(14),
        ];
        console.log(cells.join(" "));
        for (const t of theirs) if (t !== linux && t.figure !== null) console.log(`${"".padEnd(26)} ${"".padStart(21)} ${fmt(t.figure.iops).padStart(16)} ${fmt(t.figure.p99us, 1).padStart(8)} (${t.engine})`);
        if (spec.bs >= 1 << 20) {
          const copy = spec.rw === "write" ? await memoryCopyMiBs(spec) : undefined;
          console.log(`${"".padEnd(26)} dioemu ${fmt(ours.mibs)} MiB/s${copy !== undefined ? `; memory.copy of the same bytes ${fmt(copy)} MiB/s, ratio ${fmt(ours.mibs / copy, 3)}` : ""}`);
          if (spec.name === "seqwrite-1m" && copy !== undefined) {
            figures.seqMiBs = ours.mibs;
            figures.copyMiBs = copy;
          }
        }
        if (spec.name === "randwrite-4k-qd32") {
          figures.qd32 = ours.iops;
          figures.ioUringQd32 = theirs.find((t) => t.engine === "io_uring")?.figure?.iops;
        }
        if (spec.name === "randwrite-4k-dsync-qd32") figures.dsyncQd32 = ours.iops;
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/** The median of the ratios a target is about, over the runs that have both figures. */
function target(label: string, goal: number, ratio: (f: RunFigures) => number | undefined): void {
  const values = runs.map(ratio).filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (values.length === 0) return;
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted.length % 2 === 1 ? sorted[(sorted.length - 1) >> 1] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  console.log(`${label.padEnd(58)} ${values.map((v) => fmt(v, 3)).join(" ").padEnd(24)} median ${fmt(median, 3)}  (target >= ${goal}: ${median >= goal ? "met" : "not met"})`);
}
console.log(`\ntargets (per run, and the median of ${runs.length}):`);
target("randwrite-4k-qd32, dioemu / Linux io_uring", 1, (f) => (f.qd32 !== undefined && f.ioUringQd32 !== undefined ? f.qd32 / f.ioUringQd32 : undefined));
target("randwrite-4k-dsync-qd32 / randwrite-4k-qd32, dioemu", 0.5, (f) => (f.dsyncQd32 !== undefined && f.qd32 !== undefined ? f.dsyncQd32 / f.qd32 : undefined));
target("seqwrite-1m, dioemu / memory.copy of the same bytes", 0.8, (f) => (f.seqMiBs !== undefined && f.copyMiBs !== undefined ? f.seqMiBs / f.copyMiBs : undefined));
