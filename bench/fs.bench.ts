// Filesystem benchmarks (not tests: numbers go to bench/README.md).
//   1. Sequential 1 MiB buffered writes of a 64 MiB file with a final sync(), against a wasm
//      memory.copy of the same bytes in the same process.
//   2. get_block lookups per second on a file of 10,000 extents.
// Results are validated before they are reported (read back, checksums printed).
// usage: node dist/bench/fs.bench.js [--smoke] [--rounds N]
import { Disk, mkfs, mount, O_CREAT, O_RDWR, O_TRUNC } from "../host/index.js";

const args = process.argv.slice(2);
const smoke = args.includes("--smoke");
const roundsArg = args.indexOf("--rounds");
const ROUNDS = roundsArg >= 0 ? Number(args[roundsArg + 1]) : smoke ? 1 : 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function fnv1a(bytes: Uint8Array, hash = 0x811c9dc5): number {
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  return hash >>> 0;
}

const fmt = (value: number, digits = 0) => value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function bufferedWrites(): Promise<{ writeMiBs: number; copyMiBs: number; checksum: string }> {
  const FILE_MIB = smoke ? 8 : 64;
  const disk = await Disk.create({ size: 128 << 20, cacheBytes: 32 << 20, arenaBytes: 16 << 20 });
  // Commit the image's and cache's pages first (a page fault per 4 KiB of fresh memory otherwise).
  new Uint8Array(disk.memory.buffer, disk.plan.imageBase, disk.size).fill(0);
  new Uint8Array(disk.memory.buffer, disk.plan.cacheDataBase, disk.plan.cacheSlots * 4096).fill(0);
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  const fs = await mount(disk);
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7 + (i >> 12)) & 0xff;
  const times: number[] = [];
  let checksum = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const fh = await fs.open("seq", O_RDWR | O_CREAT | O_TRUNC);
    await fs.sync(); // the truncate's freed blocks come back before timing
    const t = performance.now();
    for (let mib = 0; mib < FILE_MIB; mib++) await fh.write(chunk);
    await fh.sync();
    times.push(performance.now() - t);
    // Validate: read the file back and compare every megabyte.
    const back = new Uint8Array(1 << 20);
    let hash = 0x811c9dc5;
    for (let mib = 0; mib < FILE_MIB; mib++) {
      const { bytesRead } = await fh.read(back, 0, back.length, mib << 20);
      if (bytesRead !== back.length || Buffer.compare(Buffer.from(back), Buffer.from(chunk)) !== 0) throw new Error(`megabyte ${mib} reads back wrong`);
      hash = fnv1a(back, hash);
    }
    checksum = hash;
    await fh.close();
  }
  await fs.unmount(); // gives the page cache's arena pages back for the baseline's buffers
  // The baseline: the same bytes copied by wasm memory.copy into an 8 MiB region (the size of the
  // page cache the writes go through), from a source in the arena.
  const src = disk.alloc(1 << 20);
  src.set(chunk);
  const dst = disk.alloc(8 << 20);
  const copyTimes: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const t = performance.now();
    disk.core.bench_copy(dst.byteOffset, src.byteOffset, 1 << 20, FILE_MIB, 8 << 20);
    copyTimes.push(performance.now() - t);
  }
  await disk.close();
  return {
    writeMiBs: FILE_MIB / (median(times) / 1000),
    copyMiBs: FILE_MIB / (median(copyTimes) / 1000),
    checksum: checksum.toString(16).padStart(8, "0"),
  };
}

async function lookups(): Promise<{ perSecond: number; extents: number; checksum: string }> {
  const disk = await Disk.create({ size: 64 << 20, arenaBytes: 2 << 20, cacheBytes: 1 << 20 });
  await mkfs(disk, { blockSize: 1024, inodes: 16 });
  const fs = await mount(disk);
  const a = (await fs.open("a", O_RDWR | O_CREAT)).inode;
  const b = (await fs.open("b", O_RDWR | O_CREAT)).inode;
  // Alternate single-block allocations between two files: each gets 10,000 one-block extents.
  const EXTENTS = 10000;
  for (let k = 0; k < EXTENTS; k++) {
    fs.mapBlocks(a, k * 2, 1, true, "bench");
    fs.mapBlocks(b, k * 2, 1, true, "bench");
  }
  const extents = fs.extentsOf(a.ino).length / 3;
  if (extents !== EXTENTS) throw new Error(`expected ${EXTENTS} extents, got ${extents}`);
  const core = disk.core;
  const LOOKUPS = smoke ? 100000 : 2000000;
  let state = 99;
  const times: number[] = [];
  let sum = 0;
  for (let round = 0; round < ROUNDS; round++) {
    sum = 0;
    const t = performance.now();
    for (let i = 0; i < LOOKUPS; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      core.fs_get_block(a.ino, state % (EXTENTS * 2), 1, 0);
      sum = (sum + core.fs_map_disk_block()) >>> 0;
    }
    times.push(performance.now() - t);
  }
  // Validate a sample against mapBlocks' answer computed the slow way (the extent list).
  const list = fs.extentsOf(a.ino);
  for (let k = 0; k < list.length; k += 3 * 97) {
    const map = fs.mapBlocks(a, list[k], 1, false, "bench");
    if (map.diskBlock !== list[k + 1]) throw new Error(`lookup of block ${list[k]} gave ${map.diskBlock}, the map says ${list[k + 1]}`);
  }
  await disk.close();
  return { perSecond: LOOKUPS / (median(times) / 1000), extents, checksum: sum.toString(16).padStart(8, "0") };
}

const writes = await bufferedWrites();
console.log(`sequential 1 MiB buffered writes + sync(), ${smoke ? 8 : 64} MiB file: ${fmt(writes.writeMiBs)} MiB/s`);
console.log(`wasm memory.copy of the same bytes, same process:             ${fmt(writes.copyMiBs)} MiB/s`);
console.log(`ratio buffered writes / memory.copy:                          ${fmt(writes.writeMiBs / writes.copyMiBs, 3)}`);
console.log(`checksum ${writes.checksum}`);
const found = await lookups();
console.log(`get_block lookups on a file of ${found.extents} extents: ${fmt(found.perSecond / 1e6, 2)} M/s`);
console.log(`lookup checksum ${found.checksum}; rounds ${ROUNDS} (medians)`);
