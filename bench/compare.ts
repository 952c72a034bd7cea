// bench/compare: the same fio jobs three ways, on this machine, in one run:
//   1. dioemu (the in-memory emulator, `dioemu bench`);
//   2. Linux's fio on a tmpfs file (/dev/shm), when fio is installed (`apt-get install fio`), with
//      io_uring in place of libaio as a second row for the AIO jobs;
//   3. Node's own `fs` on a tmpfs file opened with the job's O_DIRECT/O_DSYNC flags where the
//      platform allows (writeSync one at a time, or `iodepth` concurrent promises on libuv's pool).
// It prints IOPS and p99 completion latency side by side with the ratio dioemu / Linux, and the
// targets of the benchmark issue. usage: bench/compare [--runtime S] [JOBFILE...]
import { spawnSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, promises as fsp, readFileSync, rmSync, writeSync, type PathLike } from "node:fs";
import { join } from "node:path";
import { parseJobFile, type JobSpec } from "../host/bench/jobfile.js";
import { releaseResults, runJob } from "../host/bench/runner.js";
import { shippedJobFiles } from "../host/bench/command.js";

const args = process.argv.slice(2);
const runtimeIndex = args.indexOf("--runtime");
const runtime = runtimeIndex >= 0 ? Number(args[runtimeIndex + 1]) : 3;
const files = args.filter((a, i) => !a.startsWith("--") && (runtimeIndex < 0 || i !== runtimeIndex + 1));
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
console.log(`bench/compare: ${new Date().toISOString()}, node ${process.version}, runtime ${runtime} s per job, fio ${fioAvailable ? spawnSync("fio", ["--version"], { encoding: "utf8" }).stdout.trim() : "not installed"}`);
console.log("job                        dioemu IOPS  p99 us    Linux fio IOPS  p99 us  (engine)    node fs IOPS  p99 us   dioemu/Linux");
try {
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
      if (spec.bs >= 1 << 20) console.log(`${"".padEnd(26)} dioemu ${fmt(ours.mibs)} MiB/s`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
