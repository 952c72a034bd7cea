// Direct-IO benchmarks through FileHandle (not tests: numbers go to bench/README.md).
//   1. 4 KiB random O_DIRECT writes and reads, one at a time, on a 64 MiB file: IOPS, p50, p99,
//      through the promise calls (await write()/read()) and the synchronous ones (writeSync()/
//      readSync(), whose bios are waited for by polling the device).
//      In three rounds, each followed at once, when fio is installed, by Linux's own O_DIRECT
//      pwrite on a tmpfs file (fio --ioengine=psync --direct=1 --bs=4k --rw=randwrite, 3 s):
//      each round's ratio, and their median (the machine's speed drifts; a ratio is taken
//      between measurements seconds apart).
//   2. 1 MiB sequential O_DIRECT writes: MiB/s, against wasm memory.copy of the same bytes.
// usage: node dist/bench/dio.bench.js [--smoke] [--no-fio]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { Disk, mkfs, mount, O_CREAT, O_DIRECT, O_RDWR } from "../host/index.js";

const args = process.argv.slice(2);
const smoke = args.includes("--smoke");
const OPS = smoke ? 2000 : 300000;

function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const fmt = (value: number, digits = 0) => value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

interface Figures { iops: number; p50: number; p99: number }

/** One round: dioemu's four measurements, then Linux's psync right after (same machine state). */
interface Round { write: Figures; read: Figures; writeSync: Figures; readSync: Figures; linux: Figures | null }

async function randomIo(rounds: number): Promise<Round[]> {
  const disk = await Disk.create({ size: 128 << 20, cacheBytes: 32 << 20, arenaBytes: 8 << 20, latency: { writeMin: 1, writeMax: 1, readMin: 1, readMax: 1 } });
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  const fs = await mount(disk);
  const fh = await fs.open("rand", O_RDWR | O_CREAT | O_DIRECT);
  const FILE_BYTES = 64 << 20;
  const big = disk.alloc(1 << 20);
  for (let at = 0; at < FILE_BYTES; at += 1 << 20) await fh.write(big, 0, big.length, at); // allocate
  await fh.sync();
  // The write-back thread is running before anything is timed (fio's ramp lets its threads start).
  await disk.destager?.ready();
  const buf = disk.alloc(4096);
  let state = 4242;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state % (FILE_BYTES / 4096)) * 4096;
  };
  // One clock reading per call: a call's latency runs from the previous reading to its own
  // (the loop's few instructions between calls count in it).
  const figures = (lat: Float64Array, ms: number): Figures => {
    lat.sort();
    return { iops: lat.length / (ms / 1000), p50: percentile(lat, 50) * 1e3, p99: percentile(lat, 99) * 1e3 };
  };
  const measure = async (op: "write" | "read", ops = OPS): Promise<Figures> => {
    const lat = new Float64Array(ops);
    const start = performance.now();
    let prev = start;
    for (let i = 0; i < ops; i++) {
      const at = next();
      if (op === "write") {
        buf[0] = i & 0xff;
        await fh.write(buf, 0, 4096, at);
      } else {
        await fh.read(buf, 0, 4096, at);
      }
      const now = performance.now();
      lat[i] = now - prev;
      prev = now;
    }
    return figures(lat, prev - start);
  };
  const measureSync = (op: "write" | "read", ops = OPS): Figures => {
    const lat = new Float64Array(ops);
    const start = performance.now();
    let prev = start;
    for (let i = 0; i < ops; i++) {
      const at = next();
      if (op === "write") {
        buf[0] = i & 0xff;
        fh.writeSync(buf, 0, 4096, at);
      } else {
        fh.readSync(buf, 0, 4096, at);
      }
      const now = performance.now();
      lat[i] = now - prev;
      prev = now;
    }
    return figures(lat, prev - start);
  };
  // Each form is warmed up first (untimed): the JIT compiles its path, as fio's code comes
  // compiled.
  await measure("write", OPS / 10);
  await measure("read", OPS / 10);
  measureSync("write", OPS / 10);
  measureSync("read", OPS / 10);
  const results: Round[] = [];
  for (let round = 0; round < rounds; round++) {
    const writeSync = measureSync("write");
    const write = await measure("write");
    const readSync = measureSync("read");
    const read = await measure("read");
    results.push({ write, read, writeSync, readSync, linux: fio() });
  }
  // Validate: a direct write reads back through a direct read, both ways.
  const check = disk.alloc(4096);
  check.fill(0x5a);
  await fh.write(check, 0, 4096, 8192);
  const back = disk.alloc(4096);
  await fh.read(back, 0, 4096, 8192);
  if (!back.every((x) => x === 0x5a)) throw new Error("a direct write did not read back");
  check.fill(0xa5);
  fh.writeSync(check, 0, 4096, 12288);
  fh.readSync(back, 0, 4096, 12288);
  if (!back.every((x) => x === 0xa5)) throw new Error("a synchronous direct write did not read back");
  await disk.close();
  return results;
}

async function sequential(): Promise<{ writeMiBs: number; copyMiBs: number }> {
  const disk = await Disk.create({ size: 256 << 20, cacheBytes: 64 << 20, arenaBytes: 40 << 20 });
  new Uint8Array(disk.memory.buffer, disk.plan.imageBase, disk.size).fill(0);
  new Uint8Array(disk.memory.buffer, disk.plan.cacheDataBase, disk.plan.cacheSlots * 4096).fill(0);
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  const fs = await mount(disk, { semantics: "merged" });
  const fh = await fs.open("seq", O_RDWR | O_CREAT | O_DIRECT);
  const MIB = smoke ? 8 : 32;
  const buf = disk.alloc(1 << 20);
  for (let i = 0; i < buf.length; i++) buf[i] = i & 0xff;
  // Allocate first (the second pass overwrites in place, as a database file would).
  for (let m = 0; m < MIB; m++) await fh.write(buf, 0, buf.length, m << 20);
  await fh.sync();
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    const t = performance.now();
    for (let m = 0; m < MIB; m++) await fh.write(buf, 0, buf.length, m << 20);
    times.push(performance.now() - t);
    await fh.sync(); // destage the cache between rounds (untimed)
  }
  const back = disk.alloc(1 << 20);
  await fh.read(back, 0, back.length, 3 << 20);
  if (Buffer.compare(Buffer.from(back), Buffer.from(buf)) !== 0) throw new Error("sequential direct writes read back wrong");
  const dst = disk.alloc(32 << 20);
  const copyTimes: number[] = [];
  for (let round = 0; round < 5; round++) {
    const t = performance.now();
    disk.core.bench_copy(dst.byteOffset, buf.byteOffset, 1 << 20, MIB, 32 << 20);
    copyTimes.push(performance.now() - t);
  }
  await disk.close();
  times.sort((a, b) => a - b);
  copyTimes.sort((a, b) => a - b);
  return { writeMiBs: MIB / (times[2] / 1000), copyMiBs: MIB / (copyTimes[2] / 1000) };
}

function fio(): Figures | null {
  if (args.includes("--no-fio") || smoke) return null;
  const probe = spawnSync("fio", ["--version"], { encoding: "utf8" });
  if (probe.status !== 0) return null;
  const dir = mkdtempSync("/dev/shm/dioemu-fio-");
  try {
    const run = spawnSync("fio", ["--name=randwrite", `--filename=${dir}/f`, "--size=64M", "--ioengine=psync", "--direct=1",
      "--bs=4k", "--rw=randwrite", "--runtime=3", "--time_based", "--output-format=json"], { encoding: "utf8" });
    if (run.status !== 0) return null;
    const job = JSON.parse(run.stdout).jobs[0].write;
    return { iops: job.iops, p50: job.clat_ns.percentile["50.000000"] / 1000, p99: job.clat_ns.percentile["99.000000"] / 1000 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ROUNDS = smoke ? 1 : 3;
const rounds = await randomIo(ROUNDS);
const line = (name: string, f: Figures) => console.log(`${name} ${fmt(f.iops).padStart(9)} IOPS, p50 ${fmt(f.p50, 1)} us, p99 ${fmt(f.p99, 1)} us`);
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
for (const [index, r] of rounds.entries()) {
  if (ROUNDS > 1) console.log(`round ${index + 1} of ${ROUNDS}`);
  line("4 KiB random O_DIRECT writes, one at a time, await write():", r.write);
  line("4 KiB random O_DIRECT reads, one at a time, await read():  ", r.read);
  line("4 KiB random O_DIRECT writes, one at a time, writeSync():  ", r.writeSync);
  line("4 KiB random O_DIRECT reads, one at a time, readSync():    ", r.readSync);
  if (r.linux !== null) {
    line("Linux fio psync direct randwrite 4k on tmpfs:               ", r.linux);
    console.log(`ratio dioemu / Linux psync, writes: writeSync() ${fmt(r.writeSync.iops / r.linux.iops, 3)}, await write() ${fmt(r.write.iops / r.linux.iops, 3)}`);
  }
}
const paired = rounds.filter((r) => r.linux !== null);
if (paired.length > 0) {
  const sync = paired.map((r) => r.writeSync.iops / r.linux!.iops);
  const promised = paired.map((r) => r.write.iops / r.linux!.iops);
  console.log(`median of ${paired.length} rounds, dioemu / Linux psync, writes: writeSync() ${fmt(median(sync), 3)}, await write() ${fmt(median(promised), 3)}   (target >= 1)`);
} else {
  console.log("Linux fio: not run (not installed, --no-fio, or --smoke)");
}
const seq = await sequential();
console.log(`1 MiB sequential O_DIRECT writes: ${fmt(seq.writeMiBs)} MiB/s; memory.copy ${fmt(seq.copyMiBs)} MiB/s; ratio ${fmt(seq.writeMiBs / seq.copyMiBs, 3)}`);
