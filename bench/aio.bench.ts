// AIO benchmarks (not tests: numbers go to bench/README.md).
//   4 KiB random O_DIRECT AIO writes on a 64 MiB preallocated file, at queue depth 1 and 32, with
//   and without O_DSYNC, per semantics: IOPS and p50 / p99 / p99.9 latency (submit to reaped
//   event). In the same run, when fio is installed: Linux's own io_uring O_DIRECT randwrite at
//   iodepth 32 on a tmpfs file, and the ratios the targets name.
//   Before the table, one untimed row (the first semantics, no O_DSYNC, depth 32) warms the JIT up,
//   so that the first rows do not pay for it; and each row runs 2,000 untimed writes at its depth
//   before it is timed (fio's ramp_time: the flush thread starts, the row's path warms up).
// usage: node dist/bench/aio.bench.js [--smoke] [--no-fio] [--executor inline|worker] [--semantics S]
//        [--destage background|inline]   (who writes the cache back; default: the disk's default)
//        [--ops N]   (writes per row; default 300000: at depth 32 about half a second, so that a
//                    burst of load from elsewhere on a shared machine weighs less in one row)
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { Disk, ioSetup, mkfs, mount, O_CREAT, O_DIRECT, O_DSYNC, O_RDWR, type Semantics } from "../host/index.js";

const args = process.argv.slice(2);
const smoke = args.includes("--smoke");
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const executor = (option("--executor") ?? "worker") as "inline" | "worker";
const destage = option("--destage") as "background" | "inline" | undefined;
const onlySemantics = option("--semantics") as Semantics | undefined;
const opsOption = option("--ops");
const OPS = smoke ? 400 : opsOption !== undefined ? Number(opsOption) : 300000;
if (!Number.isInteger(OPS) || OPS < 1) {
  console.error(`aio.bench: --ops ${String(opsOption)} must be a positive integer`);
  process.exit(2);
}
if (destage !== undefined && destage !== "background" && destage !== "inline") {
  console.error(`aio.bench: --destage ${String(destage)} must be background or inline`);
  process.exit(2);
}
const FILE_BYTES = 64 << 20;
/** Writes each row runs, at its depth, before it is timed. */
const WARM_UP_OPS = smoke ? 64 : 2000;
const BLOCKS = FILE_BYTES / 4096;

const fmt = (value: number, digits = 0) => value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface Result { iops: number; p50: number; p99: number; p999: number; flushes: number; checksum: string }

function fnv1a(bytes: Uint8Array, hash = 0x811c9dc5): number {
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  return hash >>> 0;
}

async function run(semantics: Semantics, dsync: boolean, depth: number, ops = OPS): Promise<Result> {
  const disk = await Disk.create({ size: 96 << 20, cacheBytes: 16 << 20, arenaBytes: 4 << 20, executor, destage, latency: { writeMin: 1, writeMax: 1, flushMin: 1, flushMax: 1 } });
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  const fs = await mount(disk, { semantics });
  const fh = await fs.open("rand", O_RDWR | O_CREAT | O_DIRECT | (dsync ? O_DSYNC : 0));
  const big = disk.alloc(1 << 20);
  for (let at = 0; at < FILE_BYTES; at += 1 << 20) await fh.write(big, 0, big.length, at); // allocate
  await fs.sync();
  disk.free(big);
  // One buffer per slot of the queue; each write stamps its sequence number in its first bytes.
  const bufs = Array.from({ length: depth }, () => disk.alloc(4096));
  let state = 4242;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state % BLOCKS) * 4096;
  };
  const ctx = ioSetup(depth);
  // The harness keeps its bookkeeping in typed arrays indexed by slot and block (no Map, no
  // object or view per request), so that what is timed is dioemu's path, not the harness's.
  const lat = new Float64Array(ops);
  const startedAt = new Float64Array(depth);
  const seqOf = new Uint32Array(depth);
  const atOf = new Float64Array(depth);
  const stamps = bufs.map((buf) => new Uint32Array(buf.buffer, buf.byteOffset, 2));
  const last = new Uint32Array(BLOCKS); // block -> last sequence written there, plus one (0: none)
  let submitted = 0;
  let limit = 0;
  const submit = (slot: number) => {
    const seq = submitted++;
    const at = next();
    stamps[slot][0] = seq + 1;
    seqOf[slot] = seq;
    atOf[slot] = at;
    startedAt[slot] = performance.now();
    ctx.submit([{ opcode: "pwrite", fh, buf: bufs[slot], offset: at, data: slot }]);
  };
  // Runs writes at the row's depth until `count` more have completed; latencies go to `lat`
  // when `timed`.
  const drive = async (count: number, timed: boolean): Promise<void> => {
    limit = submitted + count;
    for (let slot = 0; slot < depth && submitted < limit; slot++) submit(slot);
    let done = 0;
    while (done < count) {
      const events = await ctx.getEvents(1, depth);
      const now = performance.now();
      for (const event of events) {
        const slot = event.data as number;
        const seq = seqOf[slot];
        if (event.res !== 4096) throw new Error(`write ${seq} completed with ${event.res}`);
        if (timed) lat[done] = now - startedAt[slot];
        done++;
        const block = atOf[slot] / 4096;
        if (seq + 1 > last[block]) last[block] = seq + 1;
        if (submitted < limit) submit(slot);
      }
    }
  };
  // Untimed first: the flush thread starts, the path warms up (fio's ramp_time); then the row.
  await drive(WARM_UP_OPS, false);
  // The write-back thread (started when the layout filled the cache) runs before the row is timed.
  await disk.destager?.ready();
  const flushesBefore = disk.stats().flushes;
  const t0 = performance.now();
  await drive(ops, true);
  const seconds = (performance.now() - t0) / 1000;
  const flushes = disk.stats().flushes - flushesBefore;
  // Validate: every block holds the last write that went there (writes to one block never overlap
  // in flight here at depth 1; at depth 32 two may, so the check allows any write made there).
  const back = disk.alloc(4096);
  let hash = 0x811c9dc5;
  for (let block = 0; block < BLOCKS; block++) {
    if (last[block] === 0) continue;
    const at = block * 4096;
    await fh.read(back, 0, 4096, at);
    const stamp = new DataView(back.buffer, back.byteOffset, 8).getUint32(0, true);
    if (depth === 1 && stamp !== last[block]) throw new Error(`block at ${at} holds write ${stamp}, expected ${last[block]}`);
    hash = fnv1a(back.subarray(0, 8), hash);
  }
  await ctx.destroy();
  await fs.unmount();
  await disk.close();
  lat.sort();
  return {
    iops: ops / seconds, p50: percentile(lat, 50) * 1e3, p99: percentile(lat, 99) * 1e3, p999: percentile(lat, 99.9) * 1e3,
    flushes, checksum: hash.toString(16).padStart(8, "0"),
  };
}

function fio(): { iops: number; p50: number; p99: number; p999: number; engine: string } | null {
  if (args.includes("--no-fio") || smoke) return null;
  const probe = spawnSync("fio", ["--version"], { encoding: "utf8" });
  if (probe.status !== 0) return null;
  const dir = mkdtempSync("/dev/shm/dioemu-fio-");
  try {
    for (const engine of ["io_uring", "libaio"]) {
      const result = spawnSync("fio", ["--name=randwrite", `--filename=${dir}/f`, "--size=64M", `--ioengine=${engine}`, "--iodepth=32",
        "--direct=1", "--bs=4k", "--rw=randwrite", "--runtime=5", "--time_based", "--output-format=json"], { encoding: "utf8" });
      if (result.status !== 0) continue;
      const job = JSON.parse(result.stdout).jobs[0].write;
      const pct = job.clat_ns.percentile;
      return { iops: job.iops, p50: pct["50.000000"] / 1000, p99: pct["99.000000"] / 1000, p999: pct["99.900000"] / 1000, engine };
    }
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const semanticsList: Semantics[] = onlySemantics !== undefined ? [onlySemantics] : ["legacy", "seed", "merged", "iomap"];
console.log(`4 KiB random O_DIRECT AIO writes, ${fmt(OPS)} per row, executor ${executor}`);
console.log("semantics  O_DSYNC  depth        IOPS    p50 us    p99 us  p99.9 us  flushes  checksum");
const table = new Map<string, Result>();
if (!smoke) await run(semanticsList[0], false, 32, Math.min(OPS, 20000)); // warm-up, untimed
for (const semantics of semanticsList) {
  for (const dsync of [false, true]) {
    for (const depth of [1, 32]) {
      const r = await run(semantics, dsync, depth);
      table.set(`${semantics}/${dsync}/${depth}`, r);
      console.log(`${semantics.padEnd(9)}  ${(dsync ? "yes" : "no").padEnd(7)}  ${String(depth).padStart(5)}  ${fmt(r.iops).padStart(10)}  ${fmt(r.p50, 1).padStart(8)}  ${fmt(r.p99, 1).padStart(8)}  ${fmt(r.p999, 1).padStart(8)}  ${String(r.flushes).padStart(7)}  ${r.checksum}`);
    }
  }
}
for (const semantics of semanticsList) {
  const plain = table.get(`${semantics}/false/32`)!;
  const synced = table.get(`${semantics}/true/32`)!;
  console.log(`${semantics}: O_DSYNC / non-sync at depth 32 = ${fmt(synced.iops / plain.iops, 3)} (target >= 0.5)`);
}
const linux = fio();
if (linux !== null) {
  console.log(`Linux fio ${linux.engine} direct randwrite 4k iodepth 32 on tmpfs: ${fmt(linux.iops)} IOPS, p50 ${fmt(linux.p50, 1)} us, p99 ${fmt(linux.p99, 1)} us, p99.9 ${fmt(linux.p999, 1)} us`);
  for (const semantics of semanticsList) {
    const plain = table.get(`${semantics}/false/32`)!;
    console.log(`${semantics}: non-sync depth 32 / Linux = ${fmt(plain.iops / linux.iops, 3)} (target >= 1)`);
  }
} else {
  console.log("Linux fio: not run (not installed, --no-fio, or --smoke)");
}
