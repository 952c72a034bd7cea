// Benchmarks of the core's write path (not tests: numbers go to bench/README.md).
//   1. 1 MiB write bios (256 pages each) through split and into the volatile cache, as a ratio to
//      a plain wasm memory.copy of the same bytes, measured in the same process and run; then
//      sustained into a full cache, and past it (DiskOptions.cacheBypass).
//   2. 4 KiB bios per second through the core, submitted in batches (blk_run_batch).
// Each result is validated (data read back and compared, checksum printed) before it is timed.
// usage: node dist/bench/core.bench.js [--smoke] [--rounds N]
import { Disk } from "../host/index.js";
import { BATCH, BATCH_SIZE, BVEC_CAPACITY, OP_READ, OP_WRITE } from "../host/layout.js";

const args = process.argv.slice(2);
const smoke = args.includes("--smoke");
const roundsArg = args.indexOf("--rounds");
const ROUNDS = roundsArg >= 0 ? Number(args[roundsArg + 1]) : smoke ? 3 : 9;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function fnv1a(bytes: Uint8Array): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, "0");
}

const BENCH_BVECS = 2048;
const BENCH_BVEC_FIRST = BVEC_CAPACITY - BENCH_BVECS;

interface Harness {
  disk: Disk;
  view: DataView;
  bvecs: Uint32Array;
  /** Writes batch record k: one bio over bvecs [bvecIndex, bvecIndex + bvecCount). */
  record(k: number, op: number, sector: number, bvecIndex: number, bvecCount: number, bytes: number): void;
  run(count: number): void;
  /** Empties the cache (untimed): a power cut drops or keeps its contents, it does not matter here. */
  resetCache(): Promise<void>;
}

async function harness(size: number, cacheBytes: number, arenaBytes: number, cacheBypass = false): Promise<Harness> {
  // Every write into the cache unless asked (large writes past a full cache are measured apart).
  const disk = await Disk.create({ size, cacheBytes, arenaBytes, limits: {}, cacheBypass });
  const view = new DataView(disk.memory.buffer);
  // The top of the bvec pool: the block layer hands out bvecs from the bottom (readSectors).
  const bvecs = new Uint32Array(disk.memory.buffer, disk.plan.bvecBase + BENCH_BVEC_FIRST * 8, BENCH_BVECS * 2);
  const batchBase = disk.plan.batchBase;
  // Commit the image's and the cache's pages before timing: the first touch of fresh memory costs
  // a page fault per 4 KiB, a one-time cost of the host OS that would otherwise dominate.
  new Uint8Array(disk.memory.buffer, disk.plan.imageBase, size).fill(0);
  new Uint8Array(disk.memory.buffer, disk.plan.cacheDataBase, disk.plan.cacheSlots * 4096).fill(0);
  new Uint8Array(disk.memory.buffer, disk.plan.arenaBase, disk.plan.arenaBytes).fill(0);
  return {
    disk, view, bvecs,
    record(k, op, sector, bvecIndex, bvecCount, bytes) {
      const at = batchBase + k * BATCH_SIZE;
      view.setUint32(at + BATCH.OP, op, true);
      view.setUint32(at + BATCH.FLAGS, 0, true);
      view.setUint32(at + BATCH.SECTOR, sector, true);
      view.setUint32(at + BATCH.BVEC_INDEX, BENCH_BVEC_FIRST + bvecIndex, true);
      view.setUint32(at + BATCH.BVEC_COUNT, bvecCount, true);
      view.setUint32(at + BATCH.BYTES, bytes, true);
    },
    run(count) {
      const failed = disk.core.blk_run_batch(0, count, 0);
      if (failed !== 0) {
        const statuses = Array.from({ length: count }, (_, k) => view.getInt32(batchBase + k * BATCH_SIZE + BATCH.STATUS, true));
        throw new Error(`${failed} bios of the batch failed: statuses ${[...new Set(statuses)].join(", ")}`);
      }
    },
    async resetCache() {
      await disk.crash();
    },
  };
}

async function bigWrites(cacheBypass: boolean): Promise<{ writeMiBs: number; copyMiBs: number; ratio: number; sustainedMiBs: number; checksum: string }> {
  const BIOS = smoke ? 4 : 16;              // 1 MiB bios per timed batch
  const CACHE_BYTES = 32 << 20;
  const h = await harness(64 << 20, CACHE_BYTES, CACHE_BYTES + (4 << 20), cacheBypass);
  const { disk } = h;
  const pages = disk.alloc(1 << 20);
  for (let i = 0; i < pages.length; i++) pages[i] = (i * 31 + (i >> 12)) & 0xff;
  for (let p = 0; p < 256; p++) {
    h.bvecs[p * 2] = pages.byteOffset + p * 4096;
    h.bvecs[p * 2 + 1] = 4096;
  }
  const setup = (first: number) => {
    for (let k = 0; k < BIOS; k++) h.record(k, OP_WRITE, ((first + k) % 64) * 2048, 0, 256, 1 << 20);
  };
  // Validate: one batch, then read back a bio's worth and compare.
  setup(0);
  h.run(BIOS);
  const back = await disk.readSectors(2048, 2048);
  if (Buffer.compare(Buffer.from(back), Buffer.from(pages)) !== 0) throw new Error("1 MiB write path: data read back differs");
  const checksum = fnv1a(back);
  await h.resetCache();

  // The baseline copies into a region as large as the cache the write path cycles through.
  const dst = disk.alloc(CACHE_BYTES);
  const writeTimes: number[] = [];
  const copyTimes: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Both measurements start from the same state: the cache just emptied by a power cut.
    setup(round * BIOS);
    let t = performance.now();
    h.run(BIOS);
    writeTimes.push(performance.now() - t);
    await h.resetCache();
    const dstOffset = ((round * BIOS) << 20) % CACHE_BYTES;
    t = performance.now();
    disk.core.bench_copy(dst.byteOffset + dstOffset, pages.byteOffset, 1 << 20, BIOS, CACHE_BYTES - dstOffset);
    copyTimes.push(performance.now() - t);
    await h.resetCache();
  }
  // Sustained: keep writing into a full cache, so every write also destages an older line (or,
  // with cacheBypass, goes past the cache).
  setup(0);
  for (let k = 0; k < 48 / BIOS; k++) h.run(BIOS);
  const sustainedTimes: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    setup(round * BIOS);
    const t = performance.now();
    h.run(BIOS);
    sustainedTimes.push(performance.now() - t);
  }
  await disk.close();
  const mib = BIOS;
  return {
    writeMiBs: mib / (median(writeTimes) / 1000),
    // Each round's write and copy ran back to back: the median of their ratios is steadier than
    // the ratio of two medians on a machine whose memory bandwidth others share.
    ratio: median(writeTimes.map((w, i) => copyTimes[i] / w)),
    copyMiBs: mib / (median(copyTimes) / 1000),
    sustainedMiBs: mib / (median(sustainedTimes) / 1000),
    checksum,
  };
}

async function smallBios(op: number): Promise<{ biosPerSecond: number; sustainedPerSecond: number; checksum: string }> {
  const BATCH_BIOS = 1024;
  const BATCHES = smoke ? 2 : 6;            // 6144 bios = 24 MiB: fits the 32 MiB cache
  const h = await harness(256 << 20, 32 << 20, 8 << 20);
  const { disk } = h;
  const buffers = disk.alloc(BATCH_BIOS * 4096);
  for (let i = 0; i < buffers.length; i++) buffers[i] = (i * 13 + (i >> 12)) & 0xff;
  for (let k = 0; k < BATCH_BIOS; k++) {
    h.bvecs[k * 2] = buffers.byteOffset + k * 4096;
    h.bvecs[k * 2 + 1] = 4096;
  }
  let state = 12345;
  const nextSector = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state % ((256 << 20) / 4096)) * 8;
  };
  const setup = () => {
    for (let k = 0; k < BATCH_BIOS; k++) h.record(k, op, nextSector(), k, 1, 4096);
  };
  // Validate: a written bio reads back (for the read benchmark, read what was written).
  state = 777;
  setup();
  for (let k = 0; k < BATCH_BIOS; k++) h.view.setUint32(h.disk.plan.batchBase + k * BATCH_SIZE + BATCH.OP, OP_WRITE, true);
  h.run(BATCH_BIOS);
  state = 777;
  const firstSector = nextSector();
  const back = await disk.readSectors(firstSector, 8);
  if (Buffer.compare(Buffer.from(back), Buffer.from(buffers.subarray(0, 4096))) !== 0) throw new Error("4 KiB path: data read back differs");
  const checksum = fnv1a(back);
  if (op === OP_WRITE) await h.resetCache();

  const times: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let total = 0;
    for (let b = 0; b < BATCHES; b++) {
      setup();
      const t = performance.now();
      h.run(BATCH_BIOS);
      total += performance.now() - t;
    }
    times.push(total);
    if (op === OP_WRITE) await h.resetCache();
  }
  // Sustained: a full cache destages one line per line written.
  const sustained: number[] = [];
  for (let b = 0; b < 12; b++) { setup(); h.run(BATCH_BIOS); }
  for (let round = 0; round < ROUNDS; round++) {
    setup();
    const t = performance.now();
    h.run(BATCH_BIOS);
    sustained.push(performance.now() - t);
  }
  await disk.close();
  return {
    biosPerSecond: (BATCH_BIOS * BATCHES) / (median(times) / 1000),
    sustainedPerSecond: BATCH_BIOS / (median(sustained) / 1000),
    checksum,
  };
}

const fmt = (value: number, digits = 0) => value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

const big = await bigWrites(false);
const past = await bigWrites(true);
console.log(`1 MiB write bios (256 pages, default limits: 9 requests each) into the cache: ${fmt(big.writeMiBs)} MiB/s`);
console.log(`wasm memory.copy of the same bytes, same process:                          ${fmt(big.copyMiBs)} MiB/s`);
console.log(`ratio write path / memory.copy (median of per-round ratios):               ${fmt(big.ratio, 2)}   (target >= 0.80)`);
console.log(`sustained, cache full (every line written destages one):                   ${fmt(big.sustainedMiBs)} MiB/s (${fmt(big.sustainedMiBs / big.copyMiBs, 2)} of memory.copy)`);
console.log(`sustained, cache full, with cacheBypass (the default: past the cache):     ${fmt(past.sustainedMiBs)} MiB/s (${fmt(past.sustainedMiBs / past.copyMiBs, 2)} of memory.copy)`);
if (past.checksum !== big.checksum) throw new Error(`1 MiB write path: checksums differ with cacheBypass (${past.checksum}, ${big.checksum})`);
console.log(`checksum ${big.checksum}`);
const writes = await smallBios(OP_WRITE);
console.log(`4 KiB write bios through the core, batches of 1024, into the cache: ${fmt(writes.biosPerSecond / 1e6, 2)} M/s   (target >= 3)`);
console.log(`4 KiB write bios, sustained with the cache full:                    ${fmt(writes.sustainedPerSecond / 1e6, 2)} M/s`);
const reads = await smallBios(OP_READ);
console.log(`4 KiB read bios through the core, batches of 1024:                  ${fmt(reads.biosPerSecond / 1e6, 2)} M/s`);
console.log(`checksums ${writes.checksum} ${reads.checksum}; rounds ${ROUNDS} (medians)`);
