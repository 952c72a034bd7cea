// The direct-IO engine against the testable assertions of /work/shared/spec/dio-semantics.md
// section 9 (the synchronous ones: 1-15, 17-24, 29; 16 cannot happen here because user memory
// cannot fault in the emulator, and 25-28 and 30 need the AIO API). Each test observes the bios
// the engine builds through the disk trace (Q = one bio as built, before any block-layer split),
// and every expected value is worked out from the spec's rules (sections 0 and 2), not taken from
// a run. Defaults, as section 9 states them: page 4096, fs block 4096 (i_blkbits 12), lbs = pbs =
// 512, DIO_LOCKING | DIO_SKIP_HOLES, a volatile write cache, the 3.x bio builder (semantics "seed").
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  Disk, DioError, mkfs, mount, O_RDWR, O_CREAT, O_DIRECT,
  type DiskOptions, type FileHandle, type Filesystem, type Semantics, type Trace, type TraceRecord,
} from "../host/index.js";

const SECTOR = 512;
const BLOCK = 4096; // fs block and page
const SECTORS_PER_BLOCK = BLOCK / SECTOR;
const KIB = 1024;
const MIB = 1024 * KIB;
const FILL = 0xaa; // what a buffer holds before a read, so that zero-fill is visible

type Bio = [sector: number, sectors: number];

// ---------------------------------------------------------------------------------------------
// Setup

interface World { disk: Disk; fs: Filesystem }

async function world(opts: Partial<DiskOptions> = {}, semantics?: Semantics): Promise<World> {
  const disk = await Disk.create({
    size: 16 * MIB, arenaBytes: 4 * MIB, cacheBytes: 1 * MIB, seed: 1, executor: "inline", ...opts,
  });
  await mkfs(disk, { blockSize: BLOCK, inodes: 64 });
  const fs = await mount(disk, semantics === undefined ? {} : { semantics });
  return { disk, fs };
}

function openDirect(fs: Filesystem, name: string): Promise<FileHandle> {
  return fs.open(name, O_RDWR | O_CREAT | O_DIRECT);
}

/** A buffer from the arena holding a pattern that differs per `seed` and per byte. */
function patterned(disk: Disk, bytes: number, seed: number, align = BLOCK): Uint8Array {
  const buf = disk.alloc(bytes, align);
  fillPattern(buf, seed);
  return buf;
}

function fillPattern(buf: Uint8Array, seed: number): void {
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 7 + seed * 31 + (i >> 9)) & 0xff;
}

/** A buffer whose address is ≡ `misalign` (mod 4096). */
function misaligned(disk: Disk, bytes: number, misalign: number): Uint8Array {
  const buf = disk.alloc(bytes + misalign, BLOCK).subarray(misalign);
  assert.is(buf.byteOffset % BLOCK, misalign, "setup: buffer address");
  return buf;
}

function filled(disk: Disk, bytes: number, value = FILL): Uint8Array {
  const buf = disk.alloc(bytes);
  buf.fill(value);
  return buf;
}

/** The inode's extents as [fileBlock, diskBlock, length] triples. */
function extents(fs: Filesystem, fh: FileHandle): number[][] {
  const raw = fs.extentsOf(fh.inode.ino);
  const out: number[][] = [];
  for (let i = 0; i < raw.length; i += 3) out.push([raw[i], raw[i + 1], raw[i + 2]]);
  return out;
}

/** The disk block of file block `fileBlock`, from the extents. */
function diskBlockOf(fs: Filesystem, fh: FileHandle, fileBlock: number): number {
  for (const [file, disk, length] of extents(fs, fh)) {
    if (fileBlock >= file && fileBlock < file + length) return disk + (fileBlock - file);
  }
  throw new Error(`setup: file block ${fileBlock} is not mapped (extents ${JSON.stringify(extents(fs, fh))})`);
}

/** Maps every free block of the filesystem to a filler inode, without IO (internal mapper). */
function fillFreeSpace(fs: Filesystem, filler: FileHandle): number {
  let fileBlock = 0;
  for (;;) {
    try {
      const map = fs.mapBlocks(filler.inode, fileBlock, 4096, true, "test");
      assert.ok(map.count > 0, "setup: the mapper allocated nothing without failing");
      fileBlock += map.count;
    } catch (error) {
      if (error instanceof DioError && error.code === "ENOSPC") return fileBlock;
      throw error;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Trace helpers

/** The bios of `op` as built by the engine (Q records), in order. */
function bios(records: readonly TraceRecord[], op: "read" | "write"): Bio[] {
  return records.filter((r) => r.action === "Q" && r.op === op).map((r) => [r.sector, r.sectors]);
}

/** DIO write bios (WRITE_ODIRECT carries SYNC; page-cache writeback does not). */
function syncWrites(records: readonly TraceRecord[]): Bio[] {
  return records.filter((r) => r.action === "Q" && r.op === "write" && r.flags.includes("SYNC")).map((r) => [r.sector, r.sectors]);
}

function plainWrites(records: readonly TraceRecord[]): Bio[] {
  return records.filter((r) => r.action === "Q" && r.op === "write" && !r.flags.includes("SYNC")).map((r) => [r.sector, r.sectors]);
}

/** Sectors covered by a list of bios, sorted. */
function sectorsOf(list: Bio[]): number[] {
  const out: number[] = [];
  for (const [sector, sectors] of list) for (let s = sector; s < sector + sectors; s++) out.push(s);
  return out.sort((a, b) => a - b);
}

function blockSectors(diskBlock: number): number[] {
  return Array.from({ length: SECTORS_PER_BLOCK }, (_, i) => diskBlock * SECTORS_PER_BLOCK + i);
}

/**
 * Calls `fn` with every trace record at the moment it is emitted (before the completion it
 * reports is handed back), so state can be sampled exactly at Q (bio queued) and C (bio completed).
 * Returns the number of records seen, so a test can check the hook worked.
 */
function onRecord(trace: Trace, fn: (record: TraceRecord) => void): () => number {
  const live = (trace as Trace & { peek(): readonly TraceRecord[] }).peek() as TraceRecord[];
  let seen = 0;
  const push = live.push;
  live.push = function (...items: TraceRecord[]): number {
    for (const item of items) {
      seen++;
      fn(item);
    }
    return push.apply(this, items);
  };
  return () => seen;
}

/** Records every value i_dio_count takes, in order. */
function watchDioCount(fh: FileHandle): number[] {
  const inode = fh.inode;
  const history: number[] = [];
  let value = inode.dioCount;
  Object.defineProperty(inode, "dioCount", {
    configurable: true,
    enumerable: true,
    get: () => value,
    set: (next: number) => {
      value = next;
      history.push(next);
    },
  });
  return history;
}

/** Counts acquisitions of the inode lock (i_mutex). */
function countLocks(fh: FileHandle): () => number {
  const lock = fh.inode.lock;
  const original = lock.lock.bind(lock);
  let count = 0;
  lock.lock = () => {
    count++;
    return original();
  };
  return () => count;
}

async function rejects(promise: Promise<unknown>, code: string, what: string): Promise<DioError> {
  let outcome: unknown;
  try {
    outcome = await promise;
  } catch (error) {
    assert.instance(error, DioError, `${what}: rejected with a non-DioError: ${String(error)}`);
    assert.is((error as DioError).code, code, `${what}: error code (${(error as Error).message})`);
    return error as DioError;
  }
  assert.unreachable(`${what}: resolved with ${JSON.stringify(outcome, (k, v) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v))}, expected ${code}`);
  throw new Error("unreachable");
}

function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function same(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) assert.unreachable(`${what}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

function allZero(actual: Uint8Array, what: string): void {
  const at = actual.findIndex((b) => b !== 0);
  if (at >= 0) assert.unreachable(`${what}: byte ${at} is ${actual[at]}, expected 0`);
}

/**
 * A file whose i_size covers blocks 0-3 with blocks 0-2 holes and block 3 mapped: reading all of it
 * makes 4 mapper calls (spec 2.8: a hole is walked one block at a time). Used as a sentinel for
 * "the mapper was not called": a later call that maps anything resets the last pass's counter.
 */
async function mapperSentinel(w: World): Promise<void> {
  const fh = await openDirect(w.fs, "sentinel");
  await fh.write(patterned(w.disk, BLOCK, 99), 0, BLOCK, 3 * BLOCK);
  const { bytesRead } = await fh.read(w.disk.alloc(4 * BLOCK), 0, 4 * BLOCK, 0);
  assert.is(bytesRead, 4 * BLOCK, "sentinel read");
  assert.is(w.disk.core.dio_map_calls(), 4, "sentinel: 3 hole blocks + 1 mapped block = 4 mapper calls (spec 2.8)");
}

// ---------------------------------------------------------------------------------------------
// Alignment and setup

test("1: with lbs=512, a 4096-byte DIO read at offset 512 into a 512-aligned buffer succeeds with 512-byte dio blocks (blkfactor 3)", async () => {
  const { disk, fs } = await world();
  const fh = await openDirect(fs, "f");
  const data = patterned(disk, 2 * BLOCK, 1);
  await fh.write(data, 0, 2 * BLOCK, 0);
  assert.equal(extents(fs, fh).length, 1, "setup: blocks 0-1 in one extent");
  const d = diskBlockOf(fs, fh, 0);

  const buf = misaligned(disk, BLOCK, 512);
  buf.fill(FILL);
  const t = disk.startTrace();
  const { bytesRead } = await fh.read(buf, 0, BLOCK, 512);
  const records = t.stop();
  assert.is(bytesRead, BLOCK);
  same(buf, data.subarray(512, 512 + BLOCK), "data read at 512");
  // dio block 512: the bio starts at dio block (d << 3) + 1, sector = that << (9 - 9).
  assert.equal(bios(records, "read"), [[d * SECTORS_PER_BLOCK + 1, SECTORS_PER_BLOCK]]);
  assert.equal(bios(records, "write"), []);
  await disk.close();
});

test("2: with lbs=512, a DIO write at offset 256 returns EINVAL with i_dio_count unchanged, no mapper call and no bio", async () => {
  const w = await world();
  const { disk, fs } = w;
  await mapperSentinel(w);
  const fh = await openDirect(fs, "f");
  const history = watchDioCount(fh);
  const before = extents(fs, fh);
  const t = disk.startTrace();
  const error = await rejects(fh.write(patterned(disk, 512, 2), 0, 512, 256), "EINVAL", "write of 512 at 256");
  const records = t.stop();
  assert.is(error.errno, -22);
  assert.equal(history, [], "i_dio_count never moved");
  assert.is(fh.inode.dioCount, 0);
  assert.is(disk.core.dio_map_calls(), 4, "no mapping pass ran (the last pass is still the sentinel's)");
  assert.equal(extents(fs, fh), before, "nothing allocated");
  assert.is(fh.inode.size, 0, "i_size unchanged");
  assert.equal(records, [], "no bio, no IO at all");
  await disk.close();
});

test("3: with lbs=4096, a 4096-byte DIO write at offset 0 from a buffer at an address ≡ 512 (mod 4096) returns EINVAL", async () => {
  const { disk, fs } = await world({ logicalBlockSize: 4096 });
  assert.is(disk.limits.logicalBlockSize, 4096, "setup: lbs");
  const fh = await openDirect(fs, "f");
  const buf = misaligned(disk, BLOCK, 512);
  fillPattern(buf, 3);
  const history = watchDioCount(fh);
  const t = disk.startTrace();
  const error = await rejects(fh.write(buf, 0, BLOCK, 0), "EINVAL", "write from address ≡ 512");
  const records = t.stop();
  assert.is(error.errno, -22);
  assert.equal(history, [], "i_dio_count never moved (spec 2.1: nothing happens before the check)");
  assert.equal(records, [], "no bio");
  assert.equal(extents(fs, fh), [], "nothing allocated");
  assert.is(fh.inode.size, 0);
  // Control: the same write from an aligned buffer is fine, so the address alone made it EINVAL.
  const { bytesWritten } = await fh.write(patterned(disk, BLOCK, 3), 0, BLOCK, 0);
  assert.is(bytesWritten, BLOCK);
  await disk.close();
});

test("4: a two-segment iovec whose second length is 1000 returns EINVAL (writev and readv), with no bio", async () => {
  const w = await world();
  const { disk, fs } = w;
  const fh = await openDirect(fs, "f");
  await fh.write(patterned(disk, 2 * BLOCK, 4), 0, 2 * BLOCK, 0);
  const before = extents(fs, fh);
  const first = patterned(disk, BLOCK, 4);
  const second = patterned(disk, 1000, 5);
  const history = watchDioCount(fh);
  const t = disk.startTrace();
  await rejects(fh.writev([first, second], 0), "EINVAL", "writev [4096, 1000]");
  await rejects(fh.readv([disk.alloc(BLOCK), disk.alloc(1000)], 0), "EINVAL", "readv [4096, 1000]");
  // Past EOF too: nothing may be allocated.
  await rejects(fh.writev([first, second], 8 * BLOCK), "EINVAL", "writev [4096, 1000] past EOF");
  const records = t.stop();
  assert.equal(records, [], "no bio");
  assert.equal(history, [], "i_dio_count never moved");
  assert.equal(extents(fs, fh), before, "nothing allocated");
  assert.is(fh.inode.size, 2 * BLOCK, "i_size unchanged");
  await disk.close();
});

test("5: a zero-length DIO read returns 0 without taking i_mutex and without calling the mapper", async () => {
  const w = await world();
  const { disk, fs } = w;
  const fh = await openDirect(fs, "f");
  await fh.write(patterned(disk, 2 * BLOCK, 5), 0, 2 * BLOCK, 0);
  await mapperSentinel(w);
  const locks = countLocks(fh);
  const history = watchDioCount(fh);
  const buf = filled(disk, BLOCK);
  const t = disk.startTrace();
  const { bytesRead } = await fh.read(buf, 0, 0, 0);
  const mid = await fh.read(buf, 0, 0, BLOCK);
  const records = t.stop();
  assert.is(bytesRead, 0);
  assert.is(mid.bytesRead, 0);
  assert.is(locks(), 0, "i_mutex not taken");
  assert.is(disk.core.dio_map_calls(), 4, "no mapping pass ran (the last pass is still the sentinel's)");
  assert.equal(history, [], "i_dio_count never moved (nothing allocated or set up)");
  assert.equal(records, [], "no bio");
  assert.ok(buf.every((b) => b === FILL), "buffer untouched");
  await disk.close();
});

test("6: a zero-length DIO write returns 0 and submits no bio", async () => {
  const { disk, fs } = await world();
  const fh = await openDirect(fs, "f");
  await fh.write(patterned(disk, BLOCK, 6), 0, BLOCK, 0);
  const before = extents(fs, fh);
  const buf = patterned(disk, BLOCK, 7);
  const t = disk.startTrace();
  const inside = await fh.write(buf, 0, 0, 0);
  const past = await fh.write(buf, 0, 0, 4 * BLOCK);
  const records = t.stop();
  assert.is(inside.bytesWritten, 0, "zero-length write inside the file");
  assert.is(past.bytesWritten, 0, "zero-length write past EOF");
  assert.equal(bios(records, "write"), [], "no write bio");
  assert.equal(bios(records, "read"), [], "no read bio");
  assert.equal(extents(fs, fh), before, "nothing allocated");
  assert.is(fh.inode.size, BLOCK, "i_size unchanged");
  await disk.close();
});

test("7: a request of 3 fs blocks at fs block 10: first mapper call gets start 10 and b_size 12288, create=1 for a write past EOF, create=0 for a read", async () => {
  const { disk, fs } = await world();
  // Write past EOF (i_size 0): one mapper call (calls made by the pass = 1) that allocates exactly
  // file blocks 10-12: start 10, b_size 3 blocks, create=1.
  const fh = await openDirect(fs, "f");
  const data = patterned(disk, 3 * BLOCK, 7);
  let t = disk.startTrace();
  const { bytesWritten } = await fh.write(data, 0, 3 * BLOCK, 10 * BLOCK);
  let records = t.stop();
  assert.is(bytesWritten, 3 * BLOCK);
  assert.is(disk.core.dio_map_calls(), 1, "one mapper call covered the whole request");
  const ext = extents(fs, fh);
  assert.is(ext.length, 1, `one extent allocated (${JSON.stringify(ext)})`);
  assert.is(ext[0][0], 10, "allocation starts at file block 10 (the mapper's start block)");
  assert.is(ext[0][2], 3, "exactly 3 blocks allocated (b_size = 12288, create = 1)");
  const x = ext[0][1];
  assert.equal(syncWrites(records), [[x * SECTORS_PER_BLOCK, 3 * SECTORS_PER_BLOCK]]);

  // Read of the same 3 blocks: one mapper call maps all of them (b_size covers 12288).
  const buf = filled(disk, 3 * BLOCK);
  t = disk.startTrace();
  const { bytesRead } = await fh.read(buf, 0, 3 * BLOCK, 10 * BLOCK);
  records = t.stop();
  assert.is(bytesRead, 3 * BLOCK);
  same(buf, data, "read back");
  assert.is(disk.core.dio_map_calls(), 1, "one mapper call covered the whole read");
  assert.equal(bios(records, "read"), [[x * SECTORS_PER_BLOCK, 3 * SECTORS_PER_BLOCK]]);

  // Read at block 10 of a file whose i_size (40961) ends 1 byte into block 10, all holes: the
  // first mapper call (block 10, which is not below i_size >> blkbits, so DIO_SKIP_HOLES does not
  // force create=0) must not allocate. Block 10 is zero-filled, block 11 is EOF: 1 byte read.
  const tail = await openDirect(fs, "tail");
  await tail.truncate(10 * BLOCK + 1);
  const tbuf = filled(disk, 3 * BLOCK);
  t = disk.startTrace();
  const short = await tail.read(tbuf, 0, 3 * BLOCK, 10 * BLOCK);
  records = t.stop();
  assert.is(short.bytesRead, 1, "clamped at i_size");
  assert.is(tbuf[0], 0, "zero-filled");
  assert.equal(extents(fs, tail), [], "the read's mapper call allocated nothing (create = 0)");
  assert.equal(records.filter((r) => r.action === "Q"), [], "no bio for a hole");

  // Read of 3 hole blocks at block 10 inside i_size: create=0, so nothing is allocated.
  const holes = await openDirect(fs, "holes");
  await holes.write(patterned(disk, BLOCK, 8), 0, BLOCK, 15 * BLOCK);
  const holesBefore = extents(fs, holes);
  const hbuf = filled(disk, 3 * BLOCK);
  t = disk.startTrace();
  const hole = await holes.read(hbuf, 0, 3 * BLOCK, 10 * BLOCK);
  records = t.stop();
  assert.is(hole.bytesRead, 3 * BLOCK);
  allZero(hbuf, "hole read");
  assert.equal(extents(fs, holes), holesBefore, "the read's mapper calls allocated nothing (create = 0)");
  assert.equal(records.filter((r) => r.action === "Q"), [], "no bio for holes");
  await disk.close();
});

// ---------------------------------------------------------------------------------------------
// Reads, EOF and holes

test("8: with i_size=5000 and blocks 0-1 mapped, a DIO read of 8192 at 0 reads 8192 bytes from the device and returns 5000", async () => {
  const { disk, fs } = await world();
  const fh = await openDirect(fs, "f");
  const data = patterned(disk, 2 * BLOCK, 8);
  await fh.write(data, 0, 2 * BLOCK, 0);
  await fh.truncate(5000);
  await fs.sync(); // the truncated tail page goes to disk: the page cache is clean for the test
  assert.is(fh.inode.size, 5000, "setup: i_size");
  assert.is(extents(fs, fh).length, 1, "setup: one extent");
  assert.is(extents(fs, fh)[0][2], 2, "setup: blocks 0-1 mapped");
  const d = diskBlockOf(fs, fh, 0);
  const buf = filled(disk, 2 * BLOCK);
  const t = disk.startTrace();
  const { bytesRead } = await fh.read(buf, 0, 2 * BLOCK, 0);
  const records = t.stop();
  assert.is(bytesRead, 5000);
  same(buf.subarray(0, 5000), data.subarray(0, 5000), "first 5000 bytes");
  const reads = bios(records, "read");
  assert.is(reads.reduce((sum, [, n]) => sum + n, 0) * SECTOR, 2 * BLOCK, "8192 bytes of device reads");
  assert.equal(reads, [[d * SECTORS_PER_BLOCK, 2 * SECTORS_PER_BLOCK]]);
  await disk.close();
});

test("9: with i_size=8192, a DIO read at offset 8192 returns 0 and issues no bio", async () => {
  const { disk, fs } = await world();
  const fh = await openDirect(fs, "f");
  await fh.write(patterned(disk, 2 * BLOCK, 9), 0, 2 * BLOCK, 0);
  const buf = filled(disk, 2 * BLOCK);
  const t = disk.startTrace();
  const atEof = await fh.read(buf, 0, BLOCK, 2 * BLOCK);
  const pastEof = await fh.read(buf, 0, 2 * BLOCK, 3 * BLOCK);
  const records = t.stop();
  assert.is(atEof.bytesRead, 0, "read at i_size");
  assert.is(pastEof.bytesRead, 0, "read past i_size");
  assert.equal(records.filter((r) => r.action === "Q"), [], "no bio");
  assert.ok(buf.every((b) => b === FILL), "buffer untouched");
  await disk.close();
});

test("10: with i_size=12288 and fs block 1 a hole, a 12288-byte DIO read zero-fills 4096-8191, returns 12288 and issues two bios even though block 2 is on disk right after block 0", async () => {
  // A small disk, so that block 2 can be placed right after block 0 on disk: every other block is
  // taken, then the one after block 0 is freed and block 2's allocation wraps around to it.
  const { disk, fs } = await world({ size: 2 * MIB });
  const fh = await openDirect(fs, "x");
  const a = patterned(disk, BLOCK, 10);
  await fh.write(a, 0, BLOCK, 0);
  const d = diskBlockOf(fs, fh, 0);
  const g = await openDirect(fs, "g");
  await g.write(patterned(disk, BLOCK, 11), 0, BLOCK, 0);
  assert.is(diskBlockOf(fs, g, 0), d + 1, "setup: g's block follows x's block 0");
  fillFreeSpace(fs, await fs.open("filler", O_RDWR | O_CREAT));
  await g.truncate(0);
  await fs.sync(); // the commit frees g's block
  const b = patterned(disk, BLOCK, 12);
  await fh.write(b, 0, BLOCK, 2 * BLOCK);
  assert.equal(extents(fs, fh), [[0, d, 1], [2, d + 1, 1]], "setup: block 1 a hole, block 2 right after block 0 on disk");
  assert.is(fh.inode.size, 3 * BLOCK, "setup: i_size");

  const buf = filled(disk, 3 * BLOCK);
  const t = disk.startTrace();
  const { bytesRead } = await fh.read(buf, 0, 3 * BLOCK, 0);
  const records = t.stop();
  assert.is(bytesRead, 3 * BLOCK);
  same(buf.subarray(0, BLOCK), a, "block 0");
  allZero(buf.subarray(BLOCK, 2 * BLOCK), "the hole (bytes 4096-8191)");
  same(buf.subarray(2 * BLOCK), b, "block 2");
  assert.equal(bios(records, "read"), [[d * SECTORS_PER_BLOCK, SECTORS_PER_BLOCK], [(d + 1) * SECTORS_PER_BLOCK, SECTORS_PER_BLOCK]],
    "two bios: block 0, then block 2 in a bio of its own");
  await disk.close();
});

test("11: with dirty page-cache pages over the range, a DIO read writes them back before mapping, and releases i_mutex before waiting for its bios", async () => {
  // Stepping per event-loop turn: the poll below runs between device steps.
  const { disk, fs } = await world({ latency: { readMin: 50, readMax: 50 }, completions: "turn" });
  const fh = await openDirect(fs, "f");
  const a = patterned(disk, 2 * BLOCK, 13);
  await fh.write(a, 0, 2 * BLOCK, 0);
  // Buffered: overwrite block 1 and extend into block 2 (no block yet: delayed allocation). If the
  // mapper ran before writeback, block 2 would be a hole and the read would see zeros there.
  const buffered = await fs.open("f", O_RDWR);
  const b = new Uint8Array(2 * BLOCK);
  fillPattern(b, 14);
  await buffered.write(b, 0, 2 * BLOCK, BLOCK);
  assert.is(fh.inode.size, 3 * BLOCK, "setup: i_size");

  const t = disk.startTrace();
  const lockedAtReadCompletion: boolean[] = [];
  const seen = onRecord(t, (r) => {
    if (r.op === "read" && r.action === "C") lockedAtReadCompletion.push(fh.inode.lock.locked);
  });
  const buf = filled(disk, 3 * BLOCK);
  let settled = false;
  const reading = fh.read(buf, 0, 3 * BLOCK, 0).finally(() => { settled = true; });
  // Poll: while the read's bios are queued and not complete, the lock must already be free.
  let polledInFlight = 0;
  while (!settled) {
    await turn();
    const live = (t as Trace & { peek(): readonly TraceRecord[] }).peek();
    const queued = live.some((r) => r.op === "read" && r.action === "Q");
    const completed = live.some((r) => r.op === "read" && r.action === "C");
    if (!settled && queued && !completed) {
      polledInFlight++;
      assert.is(fh.inode.lock.locked, false, "i_mutex is free while the read's bios are in flight");
    }
  }
  const { bytesRead } = await reading;
  const records = t.stop();
  assert.ok(seen() > 0, "the trace hook saw the records");
  assert.is(bytesRead, 3 * BLOCK);
  same(buf.subarray(0, BLOCK), a.subarray(0, BLOCK), "block 0 (direct data)");
  same(buf.subarray(BLOCK), b, "blocks 1-2: the dirty pages, written back before mapping");

  const firstReadQ = records.findIndex((r) => r.op === "read" && r.action === "Q");
  assert.ok(firstReadQ >= 0, "the read issued bios");
  const writeQ = records.filter((r) => r.op === "write" && r.action === "Q");
  const writeC = records.filter((r) => r.op === "write" && r.action === "C");
  assert.ok(writeQ.length > 0, "the dirty pages were written back");
  const blocks12 = [...blockSectors(diskBlockOf(fs, fh, 1)), ...blockSectors(diskBlockOf(fs, fh, 2))].sort((x, y) => x - y);
  assert.equal(sectorsOf(writeQ.map((r) => [r.sector, r.sectors] as Bio)), blocks12, "writeback covered blocks 1 and 2");
  assert.ok(writeQ.every((r) => r.seq < firstReadQ), "every writeback bio was queued before the read's first bio");
  assert.ok(writeC.length === writeQ.length && writeC.every((r) => r.seq < firstReadQ), "and completed (waited on) before it");
  assert.ok(lockedAtReadCompletion.length > 0, "read completions observed");
  assert.equal(lockedAtReadCompletion, lockedAtReadCompletion.map(() => false), "i_mutex released before the read's bios completed");
  assert.ok(polledInFlight > 0, "the poll saw the read in flight at least once");
  await disk.close();
});

// ---------------------------------------------------------------------------------------------
// Writes, holes, zeroing

test("12: DIO_SKIP_HOLES, i_size 16384, hole at fs block 2: a 16 KiB DIO write at 0 maps with create=0, writes blocks 0-1 directly and blocks 2-3 through the page cache, returns 16384", async () => {
  const { disk, fs } = await world();
  const fh = await openDirect(fs, "f");
  const old = patterned(disk, 4 * BLOCK, 15);
  await fh.write(old.subarray(0, BLOCK), 0, BLOCK, 0);
  await fh.write(old.subarray(BLOCK, 2 * BLOCK), 0, BLOCK, BLOCK);
  await fh.write(old.subarray(3 * BLOCK), 0, BLOCK, 3 * BLOCK);
  const d = diskBlockOf(fs, fh, 0);
  assert.equal(extents(fs, fh), [[0, d, 2], [3, diskBlockOf(fs, fh, 3), 1]], "setup: blocks 0-1 and 3 mapped, block 2 a hole");
  assert.is(fh.inode.size, 4 * BLOCK, "setup: i_size");

  const data = patterned(disk, 4 * BLOCK, 16);
  const t = disk.startTrace();
  const { bytesWritten } = await fh.write(data, 0, 4 * BLOCK, 0);
  const records = t.stop();
  assert.is(bytesWritten, 4 * BLOCK, "the syscall returns the full count");
  // The direct part: blocks 0-1 only (DIO returned 8192), as WRITE_ODIRECT (SYNC) bios. With
  // create=1 the mapper would have allocated block 2 and the direct part would have written it.
  assert.equal(syncWrites(records), [[d * SECTORS_PER_BLOCK, 2 * SECTORS_PER_BLOCK]], "direct bios cover blocks 0-1 only");
  // The rest went through the page cache: written back (block 2 allocated then) and invalidated.
  const d2 = diskBlockOf(fs, fh, 2);
  const d3 = diskBlockOf(fs, fh, 3);
  assert.equal(sectorsOf(plainWrites(records)), [...blockSectors(d2), ...blockSectors(d3)].sort((x, y) => x - y),
    "page-cache writeback covers blocks 2-3");
  const firstSync = records.findIndex((r) => r.action === "Q" && r.op === "write" && r.flags.includes("SYNC"));
  const firstPlain = records.findIndex((r) => r.action === "Q" && r.op === "write" && !r.flags.includes("SYNC"));
  assert.ok(firstSync < firstPlain, "the direct part came first");
  assert.is(fh.inode.size, 4 * BLOCK);
  const back = filled(disk, 4 * BLOCK);
  const { bytesRead } = await fh.read(back, 0, 4 * BLOCK, 0);
  assert.is(bytesRead, 4 * BLOCK);
  same(back, data, "file content");
  await disk.close();
});

test("13: an extending DIO write completes before returning and moves i_size only after its data is written (sync path; the io_submit part needs the AIO API)", async () => {
  const { disk, fs } = await world();
  const fh = await openDirect(fs, "f");
  await fh.write(patterned(disk, BLOCK, 17), 0, BLOCK, 0);
  assert.is(fh.inode.size, BLOCK, "setup: i_size");
  const data = patterned(disk, 2 * BLOCK, 18);
  const t = disk.startTrace();
  let settled = false;
  const sizes: { action: string; size: number; settled: boolean }[] = [];
  const seen = onRecord(t, (r) => {
    if (r.op === "write" && r.flags.includes("SYNC")) sizes.push({ action: r.action, size: fh.inode.size, settled });
  });
  const { bytesWritten } = await fh.write(data, 0, 2 * BLOCK, BLOCK).finally(() => { settled = true; });
  const records = t.stop();
  assert.ok(seen() > 0, "the trace hook saw the records");
  assert.is(bytesWritten, 2 * BLOCK);
  assert.ok(sizes.some((s) => s.action === "Q") && sizes.some((s) => s.action === "C"), "the write's bios were queued and completed");
  for (const s of sizes) {
    assert.is(s.size, BLOCK, `i_size still ${BLOCK} at the data bio's ${s.action}`);
    assert.is(s.settled, false, `the call had not returned at the data bio's ${s.action}`);
  }
  assert.is(fh.inode.size, 3 * BLOCK, "i_size moved once the data was written");
  assert.is((await fh.stat()).size, 3 * BLOCK);
  const d1 = diskBlockOf(fs, fh, 1);
  assert.equal(syncWrites(records), [[d1 * SECTORS_PER_BLOCK, 2 * SECTORS_PER_BLOCK]]);
  await disk.close();
});

test("14: in an empty file, blkfactor 3, new block N: a 1024-byte write at 512 writes 4096 bytes as two bios, 512 zero bytes at 8N then 1024 data + 2560 zero at 8N+1", async () => {
  const { disk, fs } = await world();
  // Block N is where the next allocation goes; fill it with non-zero bytes through the raw device
  // first, so that the zeroing is visible in the data and not only in the bio lengths.
  const tmp = await openDirect(fs, "tmp");
  await tmp.write(patterned(disk, BLOCK, 19), 0, BLOCK, 0);
  const predicted = diskBlockOf(fs, tmp, 0) + 1;
  const bd = await disk.openBlockDevice(O_RDWR | O_DIRECT);
  await bd.write(filled(disk, BLOCK, 0xee), 0, BLOCK, predicted * BLOCK);

  const fh = await openDirect(fs, "f");
  const data = patterned(disk, 1024, 20);
  const t = disk.startTrace();
  const { bytesWritten } = await fh.write(data, 0, 1024, 512);
  const records = t.stop();
  assert.is(bytesWritten, 1024);
  const ext = extents(fs, fh);
  assert.is(ext.length, 1, "one block allocated");
  assert.equal([ext[0][0], ext[0][2]], [0, 1], "file block 0, one block");
  const n = ext[0][1];
  assert.equal(syncWrites(records), [[8 * n, 1], [8 * n + 1, 7]], "head zero alone, then data + tail zero");
  assert.equal(bios(records, "write"), syncWrites(records), "no other write");
  assert.is(fh.inode.size, 1536);
  assert.is(n, predicted, "setup: the block allocated is the one pre-filled");
  const back = filled(disk, BLOCK);
  await bd.read(back, 0, BLOCK, n * BLOCK);
  allZero(back.subarray(0, 512), "head of block N");
  same(back.subarray(512, 1536), data, "data in block N");
  allZero(back.subarray(1536), "tail of block N");
  await disk.close();
});

test("15: on an existing block, a 1024-byte write at 512 writes exactly 1024 bytes at sector 8*blk+1, with no zeroing", async () => {
  const { disk, fs } = await world();
  const fh = await openDirect(fs, "f");
  const old = patterned(disk, BLOCK, 21);
  await fh.write(old, 0, BLOCK, 0);
  const blk = diskBlockOf(fs, fh, 0);
  const data = patterned(disk, 1024, 22);
  const t = disk.startTrace();
  const { bytesWritten } = await fh.write(data, 0, 1024, 512);
  const records = t.stop();
  assert.is(bytesWritten, 1024);
  assert.equal(bios(records, "write"), [[8 * blk + 1, 2]]);
  assert.equal(extents(fs, fh), [[0, blk, 1]], "no allocation");
  const back = filled(disk, BLOCK);
  await fh.read(back, 0, BLOCK, 0);
  same(back.subarray(0, 512), old.subarray(0, 512), "head kept");
  same(back.subarray(512, 1536), data, "data");
  same(back.subarray(1536), old.subarray(1536), "tail kept");
  await disk.close();
});

// ---------------------------------------------------------------------------------------------
// Bio building (3.x builder)

test("17: one 1 MiB extent, a 256-page buffer, max_segments=128 and max_sectors=2560: the builder emits 2 bios of 512 KiB", async () => {
  const { disk, fs } = await world({ limits: { maxSegments: 128, maxSectors: 2560 } });
  assert.is(disk.limits.maxSegments, 128, "setup: max_segments");
  assert.is(disk.limits.maxSectors, 2560, "setup: max_sectors");
  const fh = await openDirect(fs, "f");
  const data = patterned(disk, MIB, 23);
  let t = disk.startTrace();
  const { bytesWritten } = await fh.write(data, 0, MIB, 0);
  let records = t.stop();
  assert.is(bytesWritten, MIB);
  const d = diskBlockOf(fs, fh, 0);
  assert.equal(extents(fs, fh), [[0, d, 256]], "setup: one extent of 1 MiB");
  // nr_vecs = min(pages_in_io 256, min(128, 2560/8 + 1, 256), 256) = 128 pages = 1024 sectors.
  const expected: Bio[] = [[8 * d, 1024], [8 * d + 1024, 1024]];
  assert.equal(bios(records, "write"), expected, "write");
  const buf = disk.alloc(MIB);
  t = disk.startTrace();
  const { bytesRead } = await fh.read(buf, 0, MIB, 0);
  records = t.stop();
  assert.is(bytesRead, MIB);
  assert.equal(bios(records, "read"), expected, "read");
  same(buf, data, "data");
  await disk.close();
});

test("18: two file-contiguous blocks mapped to non-adjacent disk blocks go into two bios", async () => {
  const { disk, fs } = await world();
  const a = await openDirect(fs, "a");
  const b = await openDirect(fs, "b");
  await a.write(patterned(disk, BLOCK, 24), 0, BLOCK, 0);
  await b.write(patterned(disk, BLOCK, 25), 0, BLOCK, 0);
  await a.write(patterned(disk, BLOCK, 26), 0, BLOCK, BLOCK);
  const a0 = diskBlockOf(fs, a, 0);
  const a1 = diskBlockOf(fs, a, 1);
  assert.ok(a1 !== a0 + 1, `setup: a's blocks ${a0}, ${a1} are not adjacent on disk`);
  const expected: Bio[] = [[8 * a0, 8], [8 * a1, 8]];
  let t = disk.startTrace();
  await a.read(disk.alloc(2 * BLOCK), 0, 2 * BLOCK, 0);
  assert.equal(bios(t.stop(), "read"), expected, "read");
  t = disk.startTrace();
  await a.write(patterned(disk, 2 * BLOCK, 27), 0, 2 * BLOCK, 0);
  assert.equal(bios(t.stop(), "write"), expected, "overwrite");
  await disk.close();
});

test("19: a mapping with the boundary hint submits its bio straight after the chunk that uses it up, even though the next block is disk-contiguous", async () => {
  const { disk, fs } = await world();
  const fh = await openDirect(fs, "f");
  await fh.write(patterned(disk, BLOCK, 28), 0, BLOCK, 0);
  await fh.write(patterned(disk, BLOCK, 29), 0, BLOCK, 2 * BLOCK);
  // Block 1 is mapped last, next to block 0: extents [0, d, 2] and [2, d + 2, 1]. A mapping from
  // block 0 ends with its extent (boundary hint), and block 2 follows it on disk.
  fs.mapBlocks(fh.inode, 1, 1, true, "test");
  const d = diskBlockOf(fs, fh, 0);
  assert.equal(extents(fs, fh), [[0, d, 2], [2, d + 2, 1]], "setup: two extents, disk-contiguous");
  const expected: Bio[] = [[8 * d, 16], [8 * (d + 2), 8]];
  let t = disk.startTrace();
  const { bytesRead } = await fh.read(disk.alloc(3 * BLOCK), 0, 3 * BLOCK, 0);
  assert.is(bytesRead, 3 * BLOCK);
  assert.equal(bios(t.stop(), "read"), expected, "read");
  t = disk.startTrace();
  const { bytesWritten } = await fh.write(patterned(disk, 3 * BLOCK, 30), 0, 3 * BLOCK, 0);
  assert.is(bytesWritten, 3 * BLOCK);
  assert.equal(bios(t.stop(), "write"), expected, "overwrite");
  await disk.close();
});

test("20: two adjacent sub-page chunks of one user page going to adjacent disk blocks form one bvec", async () => {
  // max_segments=1 makes nr_vecs 1: a second bvec would need a second bio.
  const { disk, fs } = await world({ limits: { maxSegments: 1 } });
  assert.is(disk.limits.maxSegments, 1, "setup: max_segments");
  const fh = await openDirect(fs, "f");
  await fh.write(patterned(disk, 2 * BLOCK, 31), 0, 2 * BLOCK, 0);
  const d = diskBlockOf(fs, fh, 0);
  assert.equal(extents(fs, fh), [[0, d, 2]], "setup: one extent");
  // Two iovec segments, the halves of one page: 512-byte dio blocks; the first mapping covers
  // only segment 1 (3.x recomputes the request end per segment) but leaves the rest of fs block 0
  // available, so segment 2's chunk is the same page, the next offset and the next disk block.
  const page = disk.alloc(BLOCK);
  const halves = [page.subarray(0, 2048), page.subarray(2048)];
  let t = disk.startTrace();
  const { bytesRead } = await fh.readv(halves, 0);
  assert.is(bytesRead, BLOCK);
  assert.equal(bios(t.stop(), "read"), [[8 * d, 8]], "readv: one bio, one bvec");
  fillPattern(page, 32);
  t = disk.startTrace();
  const { bytesWritten } = await fh.writev(halves, 0);
  assert.is(bytesWritten, BLOCK);
  assert.equal(bios(t.stop(), "write"), [[8 * d, 8]], "writev: one bio, one bvec");
  await disk.close();
});

test("21: a 2-segment iovec whose pages map to one contiguous extent goes out as a single bio", async () => {
  const { disk, fs } = await world();
  const fh = await openDirect(fs, "f");
  await fh.write(patterned(disk, 3 * BLOCK, 33), 0, 3 * BLOCK, 0);
  const d = diskBlockOf(fs, fh, 0);
  assert.equal(extents(fs, fh), [[0, d, 3]], "setup: one extent");
  const first = disk.alloc(BLOCK);
  disk.alloc(BLOCK); // a gap in memory: the segments are not adjacent pages
  const second = disk.alloc(BLOCK);
  let t = disk.startTrace();
  const { bytesRead } = await fh.readv([first, second], 0);
  assert.is(bytesRead, 2 * BLOCK);
  assert.equal(bios(t.stop(), "read"), [[8 * d, 16]], "readv");
  t = disk.startTrace();
  const { bytesWritten } = await fh.writev([first, second], BLOCK);
  assert.is(bytesWritten, 2 * BLOCK);
  assert.equal(bios(t.stop(), "write"), [[8 * (d + 1), 16]], "writev");
  await disk.close();
});

test("22: the bio's start sector is the dio block << (blkbits - 9)", async () => {
  const { disk, fs } = await world();
  const fh = await openDirect(fs, "f");
  await fh.write(patterned(disk, 2 * BLOCK, 34), 0, 2 * BLOCK, 0);
  const d1 = diskBlockOf(fs, fh, 1);
  // blkbits 12: dio block d1, sector d1 << 3.
  let t = disk.startTrace();
  await fh.read(disk.alloc(BLOCK), 0, BLOCK, BLOCK);
  assert.equal(bios(t.stop(), "read"), [[d1 << 3, 8]], "blkbits 12");
  // blkbits 9: file offset 4096 + 1536 is dio block (d1 << 3) + 3, sector that << 0.
  t = disk.startTrace();
  await fh.read(disk.alloc(512), 0, 512, BLOCK + 1536);
  assert.equal(bios(t.stop(), "read"), [[(d1 << 3) + 3, 1]], "blkbits 9");
  // The raw device maps each block onto itself: lbs 512, offset 1536 is dio block 3, sector 3.
  const bd = await disk.openBlockDevice(O_RDWR | O_DIRECT);
  t = disk.startTrace();
  await bd.read(disk.alloc(512), 0, 512, 1536);
  assert.equal(bios(t.stop(), "read"), [[3, 1]], "raw device, blkbits 9");
  await disk.close();

  // lbs 4096: the raw device's dio block 2 (offset 8192) is sector 2 << 3.
  const big = await Disk.create({ size: 16 * MIB, logicalBlockSize: 4096, arenaBytes: 4 * MIB, cacheBytes: 1 * MIB, seed: 1, executor: "inline" });
  const bd4 = await big.openBlockDevice(O_RDWR | O_DIRECT);
  t = big.startTrace();
  await bd4.read(big.alloc(BLOCK), 0, BLOCK, 2 * BLOCK);
  assert.equal(bios(t.stop(), "read"), [[16, 8]], "raw device, blkbits 12");
  await big.close();
});

// ---------------------------------------------------------------------------------------------
// Completion, result, refcounting

test("23: with three bios of which one fails, a sync DIO returns EIO, not a partial count", async () => {
  // max_sectors = 8: the 3.x builder closes a bio at every 4 KiB, so 12 KiB is three bios.
  const { disk, fs } = await world({ limits: { maxSectors: 8 } });
  assert.is(disk.limits.maxSectors, 8, "setup: max_sectors");
  const fh = await openDirect(fs, "f");
  await fh.write(patterned(disk, 3 * BLOCK, 35), 0, 3 * BLOCK, 0);
  const d = diskBlockOf(fs, fh, 0);
  assert.equal(extents(fs, fh), [[0, d, 3]], "setup: one extent");
  const expected: Bio[] = [[8 * d, 8], [8 * d + 8, 8], [8 * d + 16, 8]];
  for (const op of ["write", "read"] as const) {
    for (let failing = 0; failing < 3; failing++) {
      const what = `${op}, bio ${failing} fails`;
      disk.injectFault({ op, sector: 8 * d + 8 * failing, sectors: 8, errno: 5, times: 1 });
      const t = disk.startTrace();
      const call = op === "write"
        ? fh.write(patterned(disk, 3 * BLOCK, 36 + failing), 0, 3 * BLOCK, 0)
        : fh.read(disk.alloc(3 * BLOCK), 0, 3 * BLOCK, 0);
      const error = await rejects(call, "EIO", what);
      const records = t.stop();
      disk.clearFaults();
      assert.is(error.errno, -5, what);
      assert.equal(bios(records, op), expected, `${what}: three bios`);
      assert.ok(records.some((r) => r.action === "C" && r.op === op && r.error === -5), `${what}: a bio failed`);
    }
  }
  await disk.close();
});

test("24: with a submission error (ENOSPC from the mapper) and an io_error both present, the submission error is returned", async () => {
  const { disk, fs } = await world({ size: 2 * MIB });
  // Leave exactly one free block: a write of two blocks maps one (and builds its bio), then the
  // mapper fails with ENOSPC; that one bio fails on the device.
  const g = await openDirect(fs, "g");
  await g.write(patterned(disk, BLOCK, 40), 0, BLOCK, 0);
  const free = diskBlockOf(fs, g, 0);
  fillFreeSpace(fs, await fs.open("filler", O_RDWR | O_CREAT));
  await g.truncate(0);
  await fs.sync(); // the commit frees g's block
  const fh = await openDirect(fs, "x");
  disk.injectFault({ op: "write", sector: 8 * free, sectors: 8, errno: 5, times: 1 });
  const t = disk.startTrace();
  const error = await rejects(fh.write(patterned(disk, 2 * BLOCK, 41), 0, 2 * BLOCK, 0), "ENOSPC", "write of 2 blocks with 1 free");
  const records = t.stop();
  disk.clearFaults();
  assert.is(error.errno, -28);
  assert.equal(bios(records, "write"), [[8 * free, 8]], "the block that was mapped went out as a bio");
  assert.ok(records.some((r) => r.action === "C" && r.op === "write" && r.sector === 8 * free && r.error === -5), "and it failed (io_error)");
  assert.is(fh.inode.dioCount, 0);
  await disk.close();
});

test("29: i_dio_count goes up by exactly 1 after setup and down by exactly 1 at completion; inode_dio_wait returns only at 0", async () => {
  const { disk, fs } = await world();
  const fh = await openDirect(fs, "f");
  await fh.write(patterned(disk, 2 * BLOCK, 42), 0, 2 * BLOCK, 0);
  const history = watchDioCount(fh);

  // A write: +1 before its bio, still 1 when the bio completes, -1 after.
  let t = disk.startTrace();
  let atRecords: { action: string; op: string; sync: boolean; count: number }[] = [];
  onRecord(t, (r) => atRecords.push({ action: r.action, op: r.op, sync: r.flags.includes("SYNC"), count: fh.inode.dioCount }));
  await fh.write(patterned(disk, BLOCK, 43), 0, BLOCK, 0);
  t.stop();
  assert.equal(history, [1, 0], "write: up once, down once");
  const writeDio = atRecords.filter((r) => r.op === "write" && r.sync);
  assert.ok(writeDio.length >= 2, "write: its bio was queued and completed");
  assert.ok(writeDio.every((r) => r.count === 1), `write: i_dio_count is 1 at every Q/C of its bio (${JSON.stringify(writeDio)})`);

  // A read with dirty pages: the count moves after the lock and flush steps (0 during writeback).
  history.length = 0;
  const buffered = await fs.open("f", O_RDWR);
  await buffered.write(new Uint8Array(BLOCK).fill(7), 0, BLOCK, BLOCK);
  atRecords = [];
  t = disk.startTrace();
  onRecord(t, (r) => atRecords.push({ action: r.action, op: r.op, sync: r.flags.includes("SYNC"), count: fh.inode.dioCount }));
  await fh.read(disk.alloc(2 * BLOCK), 0, 2 * BLOCK, 0);
  t.stop();
  assert.equal(history, [1, 0], "read: up once, down once");
  const writeback = atRecords.filter((r) => r.op === "write");
  const reads = atRecords.filter((r) => r.op === "read");
  assert.ok(writeback.length > 0 && reads.length > 0, "read: writeback and read bios seen");
  assert.ok(writeback.every((r) => r.count === 0), "read: i_dio_count still 0 during the writeback");
  assert.ok(reads.every((r) => r.count === 1), "read: i_dio_count 1 at every Q/C of its bios");

  // A failed DIO (a bio fails with EIO) still goes up once and down once.
  history.length = 0;
  disk.injectFault({ op: "read", errno: 5, times: 1 });
  await rejects(fh.read(disk.alloc(BLOCK), 0, BLOCK, 0), "EIO", "read with a failing bio");
  disk.clearFaults();
  assert.equal(history, [1, 0], "failed read: up once, down once");

  // inode_dio_wait: resolves at once when idle; with two reads in flight, only when both are done.
  history.length = 0;
  let idleResolved = false;
  void fh.inode.dioWait().then(() => { idleResolved = true; });
  await turn();
  assert.ok(idleResolved, "dioWait with no DIO in flight resolves");
  t = disk.startTrace();
  let waited: Promise<{ count: number; readQ: number; readC: number }> | undefined;
  let readQ = 0;
  let readC = 0;
  let countAtFirstQ = -1;
  onRecord(t, (r) => {
    if (r.op !== "read") return;
    if (r.action === "Q") readQ++;
    if (r.action === "C") readC++;
    if (r.action === "Q" && waited === undefined) {
      countAtFirstQ = fh.inode.dioCount;
      waited = fh.inode.dioWait().then(() => ({ count: fh.inode.dioCount, readQ, readC }));
    }
  });
  const r1 = fh.read(disk.alloc(BLOCK), 0, BLOCK, 0);
  const r2 = fh.read(disk.alloc(BLOCK), 0, BLOCK, BLOCK);
  await Promise.all([r1, r2]);
  t.stop();
  assert.ok(waited !== undefined, "dioWait was called while a read was in flight");
  assert.ok(countAtFirstQ >= 1, "a read's bio is queued with i_dio_count raised");
  const at = await waited!;
  assert.is(at.count, 0, "dioWait resolved with i_dio_count 0");
  assert.is(at.readQ, 2, "both reads had queued their bio by then");
  assert.is(at.readC, 2, "and both bios had completed");
  assert.ok(history.every((v, i) => Math.abs(v - (i === 0 ? 0 : history[i - 1])) === 1), `steps of exactly 1 (${JSON.stringify(history)})`);
  assert.is(history.filter((v, i) => v > (i === 0 ? 0 : history[i - 1])).length, 2, "two increments");
  assert.is(history[history.length - 1], 0, "back to 0");
  await disk.close();
});

test.run();
