// The device and durability (spec 6.2, assertions 55-56, DESIGN "The device and durability"):
// seeded power cuts checked against the durability model oracle, flush coalescing, the counters.
// Replay one seed of the crash property with SEED=n; run another range with SEEDS=a..b.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Disk, formatBlkparse, type QueueLimits, type TraceRecord } from "../host/index.js";
import { DurabilityModel, INITIAL } from "./model/durability-model.js";
import { Rng as BaseRng } from "./util/random.js";
import { rejectsDioError } from "./util/errors.js";

const SECTOR_BYTES = 512;
const WORDS_PER_SECTOR = SECTOR_BYTES / 4;
const EIO = -5;
const DISK_BYTES = 256 << 10;
const DISK_SECTORS = DISK_BYTES / SECTOR_BYTES;
const CACHE_BYTES = 64 << 10;
const CACHE_BYTES_MIN = 16 << 10;
const ARENA_BYTES = 1 << 20;
/** Every wait for the device is bounded by this many event-loop turns. */
const TURNS_MAX = 20000;
const SEEDS_DEFAULT_FIRST = 1;
const SEEDS_DEFAULT_LAST = 2000;

type WriteFlag = "FUA" | "PREFLUSH";

// ---- helpers ---------------------------------------------------------------------------------

/** The shared PRNG (mulberry32), salted as this file always was, with its own integer mapping
 *  (a modulo), so that every seed keeps the workload it has always had. */
class Rng extends BaseRng {
  constructor(seed: number) {
    super(seed ^ 0x5bd1e995);
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 2 ** 32;
  }
  /** Uniform integer in [min, max]. */
  override int(min: number, max: number): number {
    return min + (this.u32() % (max - min + 1));
  }
  override chance(p: number): boolean {
    return this.next() < p;
  }
  override pick<T>(items: readonly T[]): T {
    return items[this.u32() % items.length];
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Lets the device run until `done()` holds; throws naming `what` after TURNS_MAX turns. */
async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < TURNS_MAX; i++) {
    if (done()) return;
    await turn();
  }
  throw new Error(`waited ${TURNS_MAX} event-loop turns for ${what}`);
}

/** Word `k` of sector `sector` as write `id` stamps it: id, sector, then a hash of all three. */
function stampWord(id: number, sector: number, k: number): number {
  if (k === 0) return id >>> 0;
  if (k === 1) return sector >>> 0;
  let h = Math.imul(id, 0x9e3779b1) ^ Math.imul(sector + 0x632be5ab, 0x85ebca6b) ^ Math.imul(k, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Fills `buf` (whole sectors) with write `id`'s stamp for sectors firstSector, firstSector+1, ... */
function stampSectors(buf: Uint8Array, id: number, firstSector: number): void {
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const sectorCount = buf.byteLength / SECTOR_BYTES;
  for (let i = 0; i < sectorCount; i++) {
    for (let k = 0; k < WORDS_PER_SECTOR; k++) words[i * WORDS_PER_SECTOR + k] = stampWord(id, firstSector + i, k);
  }
}

/**
 * The version held by sector index `index` of `bytes` (which starts at disk sector `firstSector`):
 * INITIAL for all zeros, a write id for that write's intact stamp, undefined for anything else
 * (a byte mix of two versions, or garbage).
 */
function versionAt(bytes: Uint8Array, index: number, firstSector: number): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset + index * SECTOR_BYTES, SECTOR_BYTES);
  const id = view.getUint32(0, true);
  const sector = firstSector + index;
  for (let k = 0; k < WORDS_PER_SECTOR; k++) {
    const want = id === INITIAL ? 0 : stampWord(id, sector, k);
    if (view.getUint32(k * 4, true) !== want) return undefined;
  }
  return id;
}

function hexHead(bytes: Uint8Array, index: number): string {
  return Array.from(bytes.subarray(index * SECTOR_BYTES, index * SECTOR_BYTES + 16), (b) => b.toString(16).padStart(2, "0")).join(" ");
}

function versionName(version: number | undefined): string {
  if (version === undefined) return "a mix/garbage";
  return version === INITIAL ? "initial" : `w${version}`;
}

/** The versions of `sectors` sectors from `sector`, as reads see them now. */
async function versionsOf(disk: Disk, sector: number, sectors: number): Promise<(number | undefined)[]> {
  const bytes = await disk.readSectors(sector, sectors);
  return Array.from({ length: sectors }, (_, i) => versionAt(bytes, i, sector));
}

async function newDisk(seed: number, extra: Partial<Parameters<typeof Disk.create>[0]> = {}): Promise<Disk> {
  return Disk.create({ size: DISK_BYTES, cacheBytes: CACHE_BYTES, arenaBytes: ARENA_BYTES, seed, ...extra });
}

/** Writes write `id`'s stamp to sectors [sector, sector+sectors) and waits; returns the status. */
async function writeStamped(disk: Disk, id: number, sector: number, sectors: number, flags: WriteFlag[] = []): Promise<number> {
  const buf = disk.alloc(sectors * SECTOR_BYTES);
  stampSectors(buf, id, sector);
  try {
    return await disk.queue.submitBioWait({ op: "write", sector, segments: [{ buf }], flags });
  } finally {
    disk.free(buf);
  }
}

/** Submits a stamped write without waiting; the returned object fills in when endIo runs. */
function startWrite(disk: Disk, id: number, sector: number, sectors: number, flags: WriteFlag[] = []): { status?: number } {
  const result: { status?: number } = {};
  const buf = disk.alloc(sectors * SECTOR_BYTES);
  stampSectors(buf, id, sector);
  disk.queue.submitBio({
    op: "write", sector, segments: [{ buf }], flags,
    endIo: (status) => {
      result.status = status;
      disk.free(buf);
    },
  });
  return result;
}

function startFlush(disk: Disk, order?: string[], name?: string): { status?: number } {
  const result: { status?: number } = {};
  disk.queue.submitBio({
    op: "flush", sector: 0, segments: [],
    endIo: (status) => {
      result.status = status;
      if (order !== undefined && name !== undefined) order.push(name);
    },
  });
  return result;
}

const deviceFlushes = (records: readonly TraceRecord[]): TraceRecord[] => records.filter((r) => r.action === "D" && r.op === "flush");

// ---- the oracle itself -------------------------------------------------------------------------
// Hand-built histories with answers worked out from the rules, so that an oracle that allowed
// everything (and made the property vacuous) would fail here.

const allowedOf = (model: DurabilityModel, sector: number): number[] => [...model.allowedAfterCrash(sector)].sort((a, b) => a - b);

test("oracle: a flush covers writes completed before it was submitted, and only those", () => {
  const model = new DurabilityModel({ writeCache: true });
  model.writeSubmitted(1, 0, 8);
  model.writeCompleted(1, 0);
  model.writeSubmitted(2, 8, 8);
  model.flushSubmitted(3); // w2 is still in flight: not covered
  model.writeCompleted(2, 0);
  model.flushCompleted(3, 0);
  model.writeSubmitted(4, 0, 8); // overwrites w1, never flushed
  model.writeCompleted(4, 0);
  model.writeSubmitted(5, 16, 8); // in flight at the cut
  model.powerCut(false);
  assert.equal(allowedOf(model, 0), [1, 4]);
  assert.equal(allowedOf(model, 8), [INITIAL, 2]);
  assert.equal(allowedOf(model, 16), [INITIAL, 5]);
  assert.equal(allowedOf(model, 24), [INITIAL]);
  assert.ok(model.durableReason(1) !== undefined);
  assert.is(model.durableReason(2), undefined);
  assert.ok(model.crashViolation(0, INITIAL)?.includes("f3"));
  assert.equal(model.inFlightAtCrash().map((w) => w.id), [5]);
});

test("oracle: FUA, PREFLUSH, no cache, unordered writes, and completions after the cut", () => {
  const fua = new DurabilityModel({ writeCache: true });
  fua.writeSubmitted(1, 0, 8);
  fua.writeCompleted(1, 0);
  fua.writeSubmitted(2, 4, 8, { fua: true }); // durable: its own data only
  fua.writeCompleted(2, 0);
  fua.writeSubmitted(3, 100, 8, { preflush: true }); // its preflush covers w1 and w2
  fua.writeCompleted(3, 0);
  fua.writeSubmitted(4, 200, 8, { fua: true }); // two FUA writes that overlapped in time
  fua.writeSubmitted(5, 200, 8, { fua: true });
  fua.writeCompleted(5, 0);
  fua.writeCompleted(4, 0);
  fua.flushSubmitted(6); // completes only after the cut: covers nothing
  fua.writeSubmitted(7, 300, 8);
  fua.writeCompleted(7, 0);
  fua.powerCut(true);
  fua.flushCompleted(6, EIO);
  assert.equal(allowedOf(fua, 0), [1]);
  assert.equal(allowedOf(fua, 4), [2]);
  assert.equal(allowedOf(fua, 100), [INITIAL, 3]);
  assert.equal(allowedOf(fua, 200), [4, 5]);
  assert.equal(allowedOf(fua, 300), [INITIAL, 7]);

  const bare = new DurabilityModel({ writeCache: false });
  bare.writeSubmitted(1, 0, 8);
  bare.writeCompleted(1, 0);
  bare.writeSubmitted(2, 0, 8);
  bare.powerCut(false);
  bare.writeCompleted(2, EIO);
  assert.equal(allowedOf(bare, 0), [1, 2]);
  assert.ok(bare.crashViolation(0, 9)?.includes("never wrote"));
});

test("oracle: reads see the newest completed write, or writes still in flight", () => {
  const model = new DurabilityModel({ writeCache: true });
  model.readSubmitted(1, 0, 8);
  model.readCompleted(1, 0);
  model.writeSubmitted(2, 0, 8);
  model.writeCompleted(2, 0);
  model.writeSubmitted(3, 0, 8);
  model.readSubmitted(4, 0, 8); // w3 in flight during the read
  model.readCompleted(4, 0);
  model.writeCompleted(3, 0);
  model.writeSubmitted(5, 0, 8); // submitted after read 4 completed
  assert.is(model.readViolation(1, 0, INITIAL), undefined);
  assert.ok(model.readViolation(1, 0, 2) !== undefined, "a write submitted after the read completed");
  assert.is(model.readViolation(4, 0, 2), undefined);
  assert.is(model.readViolation(4, 0, 3), undefined);
  assert.ok(model.readViolation(4, 0, INITIAL) !== undefined, "w2 completed before the read");
  assert.ok(model.readViolation(4, 0, 5) !== undefined);
});

// ---- the crash property ------------------------------------------------------------------------

/** Every seed runs once on each kind of device. */
const VARIANTS = ["cache", "no-cache", "no-fua", "small-cache", "bypass"] as const;
type Variant = (typeof VARIANTS)[number];
const VARIANT_LABEL: Record<Variant, string> = {
  "cache": "64 KiB write cache with FUA",
  "no-cache": "no write cache",
  "no-fua": "64 KiB write cache without FUA (FUA = write + flush)",
  "small-cache": "16 KiB write cache that fills and destages",
  "bypass": "64 KiB write cache, with writes of up to 128 KiB that go past it when it is full",
};
/** The variants' PRNG streams: the first four as they always were (seed * 4 + index). */
function variantSalt(seed: number, variant: Variant): number {
  return variant === "bypass" ? (seed * 4 + 0x20000001) >>> 0 : seed * 4 + VARIANTS.indexOf(variant);
}

function seedsToRun(): { seeds: number[]; label: string } {
  const one = process.env.SEED;
  if (one !== undefined && one !== "") {
    const seed = Number(one);
    if (!Number.isInteger(seed) || seed < 0) throw new Error(`SEED=${one} must be a non-negative integer`);
    return { seeds: [seed], label: `seed ${seed}` };
  }
  let first = SEEDS_DEFAULT_FIRST;
  let last = SEEDS_DEFAULT_LAST;
  const range = process.env.SEEDS;
  if (range !== undefined && range !== "") {
    const match = /^(\d+)\.\.(\d+)$/.exec(range);
    if (match === null) throw new Error(`SEEDS=${range} must look like 1..2000`);
    first = Number(match[1]);
    last = Number(match[2]);
  }
  return { seeds: Array.from({ length: last - first + 1 }, (_, i) => first + i), label: `seeds ${first}..${last}` };
}

interface SubmittedWrite { id: number; sector: number; sectors: number; fua: boolean; completedBeforeCut: boolean }
interface Piece { writeId: number; sector: number; sectors: number; completed: boolean; ambiguous: boolean; completedSeq: number }

/**
 * The requests each write bio became, from the trace: Q and the X records right after it give the
 * pieces; each C record (before the power cut) completes the open piece with the same range. A C
 * that several open pieces could match marks them all ambiguous (their atomicity is not checked).
 */
function piecesFromTrace(records: readonly TraceRecord[], writes: readonly SubmittedWrite[], problems: string[]): Map<number, Piece[]> {
  const unmatched = [...writes];
  const pieces = new Map<number, Piece[]>();
  let open: Piece[] = [];
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    if (record.op !== "write") continue;
    if (record.action === "Q") {
      const k = unmatched.findIndex((w) => w.sector === record.sector && w.sectors === record.sectors);
      if (k < 0) {
        problems.push(`trace: Q of a write at ${record.sector}+${record.sectors} matches no submitted write`);
        continue;
      }
      const write = unmatched.splice(k, 1)[0];
      const list: Piece[] = [];
      let start = write.sector;
      for (let j = i + 1; j < records.length && records[j].action === "X" && records[j].op === "write"; j++) {
        const split = records[j];
        if (split.sector - split.sectors !== start) problems.push(`trace: split record ${split.sector - split.sectors}/${split.sector} of w${write.id} does not follow its previous piece (which starts at ${start})`);
        list.push({ writeId: write.id, sector: start, sectors: split.sector - start, completed: false, ambiguous: false, completedSeq: -1 });
        start = split.sector;
      }
      list.push({ writeId: write.id, sector: start, sectors: write.sector + write.sectors - start, completed: false, ambiguous: false, completedSeq: -1 });
      pieces.set(write.id, list);
      open.push(...list);
    } else if (record.action === "C") {
      const matches = open.filter((p) => p.sector === record.sector && p.sectors === record.sectors);
      if (matches.length === 0) {
        problems.push(`trace: C of a write at ${record.sector}+${record.sectors} (seq ${record.seq}) matches no request in flight`);
        continue;
      }
      if (matches.length > 1) for (const match of matches) match.ambiguous = true;
      matches[0].completed = true;
      matches[0].completedSeq = record.seq;
      open = open.filter((p) => p !== matches[0]);
    }
  }
  return pieces;
}

/** Write requests that went past a full cache, over the seeds run so far. */
let bypassedRequests = 0;

/** Runs one seed; returns undefined when every rule held, else a report that replays it. */
async function runSeed(seed: number, variant: Variant): Promise<string | undefined> {
  const rng = new Rng(variantSalt(seed, variant));
  const logicalBlockSize = rng.pick([512, 512, 1024, 2048, 4096] as const);
  const blockSectors = logicalBlockSize / SECTOR_BYTES;
  const limits: Partial<QueueLimits> = {};
  if (rng.chance(0.5)) limits.maxSectors = rng.pick([8, 16, 24, 32]);
  if (rng.chance(0.4)) limits.maxSegments = rng.int(1, 3);
  if (rng.chance(0.3)) limits.chunkSectors = rng.pick([8, 16, 32]);
  if (rng.chance(0.15)) limits.virtBoundaryMask = 4095;
  // Large writes stay large requests (64 KiB or more may go past the cache).
  const large = variant === "bypass";
  if (large) {
    delete limits.maxSectors;
    delete limits.chunkSectors;
  }
  const torn = rng.chance(0.5);
  // Writes in flight together may overlap in some seeds; elsewhere they stay disjoint, so that
  // every request in flight at the power cut can be told apart in the trace.
  const overlap = rng.chance(0.3);
  const opCount = rng.int(10, 40);
  const writeCache = variant !== "no-cache";
  const disk = await Disk.create({
    size: DISK_BYTES, arenaBytes: ARENA_BYTES, seed, logicalBlockSize, limits, writeCache,
    fua: variant !== "no-fua",
    cacheBytes: writeCache ? (variant === "small-cache" ? CACHE_BYTES_MIN : CACHE_BYTES) : undefined,
  });
  const config = `variant ${variant}, logical block ${logicalBlockSize}, limits ${JSON.stringify(limits)}, torn ${torn}, overlapping writes ${overlap}, ${opCount} ops`;

  const model = new DurabilityModel({ writeCache });
  const problems: string[] = [];
  const writes: SubmittedWrite[] = [];
  const inFlight = new Map<number, { kind: "write" | "flush" | "read"; sector: number; sectors: number }>();
  let cut = false;
  let nextId = 1;
  const trace = disk.startTrace();

  const expectStatus = (what: string, status: number): void => {
    const want = cut ? EIO : 0;
    if (status !== want) problems.push(`${what} completed with status ${status}, expected ${want} (${cut ? "it was in flight at the power cut" : "before the power cut"})`);
  };

  const submitWrite = (sector: number, sectors: number, fua: boolean, preflush: boolean): void => {
    const id = nextId++;
    const buf = disk.alloc(sectors * SECTOR_BYTES);
    stampSectors(buf, id, sector);
    // 1 to 3 segments, each a whole number of logical blocks, cut from the one buffer.
    const blocks = sectors / blockSectors;
    const cuts = new Set<number>();
    const segmentCount = Math.min(blocks, rng.int(1, 3));
    while (cuts.size < segmentCount - 1) cuts.add(rng.int(1, blocks - 1));
    const bounds = [0, ...[...cuts].sort((a, b) => a - b), blocks];
    const segments = bounds.slice(1).map((end, i) => ({ buf, offset: bounds[i] * logicalBlockSize, length: (end - bounds[i]) * logicalBlockSize }));
    const flags: WriteFlag[] = [];
    if (fua) flags.push("FUA");
    if (preflush) flags.push("PREFLUSH");
    const write: SubmittedWrite = { id, sector, sectors, fua, completedBeforeCut: false };
    writes.push(write);
    model.writeSubmitted(id, sector, sectors, { fua, preflush });
    inFlight.set(id, { kind: "write", sector, sectors });
    disk.queue.submitBio({
      op: "write", sector, segments, flags,
      endIo: (status) => {
        model.writeCompleted(id, status);
        expectStatus(`w${id}`, status);
        write.completedBeforeCut = !cut;
        inFlight.delete(id);
        disk.free(buf);
      },
    });
  };

  const submitFlush = (): void => {
    const id = nextId++;
    model.flushSubmitted(id);
    inFlight.set(id, { kind: "flush", sector: 0, sectors: 0 });
    disk.queue.submitBio({
      op: "flush", sector: 0, segments: [],
      endIo: (status) => {
        model.flushCompleted(id, status);
        expectStatus(`f${id}`, status);
        inFlight.delete(id);
      },
    });
  };

  const checkRead = (id: number, bytes: Uint8Array, sector: number, sectors: number): void => {
    for (let i = 0; i < sectors; i++) {
      const version = versionAt(bytes, i, sector);
      if (version === undefined) {
        problems.push(`read r${id} saw sector ${sector + i} hold no single intact version (starts ${hexHead(bytes, i)})`);
        continue;
      }
      const violation = model.readViolation(id, sector + i, version);
      if (violation !== undefined) problems.push(violation);
    }
  };

  const submitRead = (sector: number, sectors: number): void => {
    const id = nextId++;
    const buf = disk.alloc(sectors * SECTOR_BYTES);
    model.readSubmitted(id, sector, sectors);
    inFlight.set(id, { kind: "read", sector, sectors });
    disk.queue.submitBio({
      op: "read", sector, segments: [{ buf }],
      endIo: (status) => {
        model.readCompleted(id, status);
        expectStatus(`r${id}`, status);
        if (status === 0) checkRead(id, buf, sector, sectors);
        inFlight.delete(id);
        disk.free(buf);
      },
    });
  };

  /** A whole-disk read with nothing in flight: every sector must show the newest completed write. */
  const checkQuiescent = async (): Promise<void> => {
    await until(() => inFlight.size === 0, `seed ${seed}: the bios in flight to complete`);
    const id = nextId++;
    model.readSubmitted(id, 0, DISK_SECTORS);
    const bytes = await disk.readSectors(0, DISK_SECTORS);
    model.readCompleted(id, 0);
    checkRead(id, bytes, 0, DISK_SECTORS);
  };

  const totalBlocks = DISK_SECTORS / blockSectors;
  const hotBlocks = 64 / blockSectors; // half the writes land in the first 64 sectors, to stack versions
  const maxBlocks = Math.max(1, 16 / blockSectors);
  const overlapsWriteInFlight = (sector: number, sectors: number): boolean => {
    for (const bio of inFlight.values()) {
      if (bio.kind === "write" && sector < bio.sector + bio.sectors && bio.sector < sector + sectors) return true;
    }
    return false;
  };
  const pickRange = (forWrite: boolean): [number, number] | undefined => {
    for (let attempt = 0; attempt < 8; attempt++) {
      if (large && forWrite && rng.chance(0.4)) {
        // 64 to 128 KiB anywhere on the disk, over whatever is cached.
        const blocks = rng.int(128 / blockSectors, 256 / blockSectors);
        const sector = rng.int(0, totalBlocks - blocks) * blockSectors;
        const sectors = blocks * blockSectors;
        if (overlap || !overlapsWriteInFlight(sector, sectors)) return [sector, sectors];
        continue;
      }
      const blocks = rng.int(1, maxBlocks);
      const span = rng.chance(0.5) ? hotBlocks : totalBlocks;
      const sector = rng.int(0, span - blocks) * blockSectors;
      const sectors = blocks * blockSectors;
      if (!forWrite || overlap || !overlapsWriteInFlight(sector, sectors)) return [sector, sectors];
    }
    return undefined;
  };

  const quiesceAt = rng.chance(0.25) ? rng.int(0, opCount - 1) : -1;
  let records: TraceRecord[] = [];
  try {
    for (let op = 0; op < opCount; op++) {
      if (op === quiesceAt) await checkQuiescent();
      // 45% plain writes, 10% FUA, 7% PREFLUSH (some also FUA), 13% flushes, 25% reads.
      const r = rng.next();
      if (r < 0.62) {
        const range = pickRange(true);
        if (range !== undefined) {
          const fua = r >= 0.45 && (r < 0.55 || rng.chance(0.4));
          const preflush = r >= 0.55;
          submitWrite(range[0], range[1], fua, preflush);
        }
      } else if (r < 0.75) {
        submitFlush();
      } else {
        const range = pickRange(false)!;
        submitRead(range[0], range[1]);
      }
      const waits = rng.pick([0, 0, 1, 1, 2, 3]);
      for (let i = 0; i < waits; i++) await turn();
    }
    // The cut comes at a random moment: often with bios in flight, sometimes after they settled.
    const waits = rng.pick([0, 0, 0, 1, 2, 4, 8, 16]);
    for (let i = 0; i < waits; i++) await turn();

    // The power cut. Nothing runs between these lines: the trace ends exactly at the cut.
    records = trace.stop();
    cut = true;
    model.powerCut(torn);
    await disk.crash({ torn });
    const atCut = await disk.readSectors(0, DISK_SECTORS);
    try {
      await until(() => inFlight.size === 0, "the bios in flight at the power cut to complete");
    } catch {
      problems.push(`bios ${[...inFlight.keys()].join(", ")} in flight at the power cut never completed`);
    }
    const image = await disk.readSectors(0, DISK_SECTORS);
    if (Buffer.compare(atCut, image) !== 0) problems.push("the disk changed after the power cut, while the bios in flight at the cut completed");

    // Every sector holds one intact version, and one the rules allow.
    const versions: (number | undefined)[] = [];
    for (let s = 0; s < DISK_SECTORS; s++) {
      const version = versionAt(image, s, 0);
      versions.push(version);
      if (version === undefined) {
        problems.push(`after the power cut sector ${s} holds no single intact version (starts ${hexHead(image, s)}); allowed: ${[...model.allowedAfterCrash(s)].map(versionName).join(", ")}`);
        continue;
      }
      const violation = model.crashViolation(s, version);
      if (violation !== undefined) problems.push(`after the power cut: ${violation}`);
    }

    // Without torn, a request in flight at the cut landed whole or not at all.
    const pieces = piecesFromTrace(records, writes, problems);
    if (!torn) {
      for (const write of model.inFlightAtCrash()) {
        for (const piece of pieces.get(write.id) ?? []) {
          if (piece.completed || piece.ambiguous) continue;
          const sectors = model.exclusiveSectors(write.id, piece.sector, piece.sectors);
          const landed = sectors.filter((s) => versions[s] === write.id);
          if (landed.length > 0 && landed.length < sectors.length) {
            problems.push(`request ${piece.sector}+${piece.sectors} of w${write.id} was in flight at a power cut without torn, yet landed in only some sectors: ${landed.join(",")} of ${sectors.join(",")}`);
          }
        }
      }
    }

    // How the block layer served FUA and flushes for this device.
    if (variant === "no-cache" || variant === "no-fua") {
      const fuaDispatch = records.find((rec) => rec.action === "D" && rec.op === "write" && rec.flags.includes("FUA"));
      if (fuaDispatch !== undefined) problems.push(`a write request went to a device without FUA carrying FUA (trace seq ${fuaDispatch.seq})`);
    }
    if (variant === "no-cache") {
      const flushes = deviceFlushes(records);
      if (flushes.length !== 0) problems.push(`a device without a write cache received ${flushes.length} flush requests (first at trace seq ${flushes[0].seq})`);
      if (disk.stats().flushes !== 0) problems.push(`stats().flushes is ${disk.stats().flushes} on a device without a write cache`);
    }
    if (variant === "no-fua") {
      for (const write of writes) {
        const list = pieces.get(write.id) ?? [];
        if (!write.fua || !write.completedBeforeCut || list.length === 0 || list.some((p) => p.ambiguous)) continue;
        const lastC = Math.max(...list.map((p) => p.completedSeq));
        if (!records.some((rec) => rec.action === "D" && rec.op === "flush" && rec.seq > lastC)) {
          problems.push(`FUA write w${write.id} completed on a cache without FUA, but no flush was dispatched after its data completed (trace seq ${lastC})`);
        }
      }
    }
  } catch (error) {
    problems.push(`exception: ${(error as Error).stack ?? String(error)}`);
  }
  bypassedRequests += disk.stats().bypassWrites;
  await disk.close();
  if (problems.length === 0) return undefined;
  return [
    `crash property failed for seed ${seed} (replay: SEED=${seed} node dist/test/device.test.js)`,
    `  ${config}`,
    ...problems.slice(0, 12).map((p) => `  - ${p}`),
    problems.length > 12 ? `  ... and ${problems.length - 12} more` : "",
    "history (model events):",
    model.history(),
    "trace up to the power cut:",
    formatBlkparse(records),
  ].join("\n");
}

const crashSeeds = seedsToRun();
console.log(`device.test: crash property over ${crashSeeds.label} (replay one with SEED=n, another range with SEEDS=a..b)`);

for (const variant of VARIANTS) {
  const seeds = crashSeeds.seeds;
  test(`power cuts keep what the rules keep: ${VARIANT_LABEL[variant]} (${seeds.length} seeds)`, async () => {
    const failed: number[] = [];
    let firstReport = "";
    bypassedRequests = 0;
    for (const seed of seeds) {
      const report = await runSeed(seed, variant);
      if (report === undefined) continue;
      failed.push(seed);
      if (firstReport === "") firstReport = report;
    }
    if (failed.length > 0) {
      assert.unreachable(`${failed.length} of ${seeds.length} seeds failed (${failed.slice(0, 20).join(", ")}${failed.length > 20 ? ", ..." : ""}); the first:\n${firstReport}`);
    }
    // Only large writes go past the cache, and in the variant that makes them, some do.
    if (variant === "bypass") assert.ok(bypassedRequests >= seeds.length / 4, `${bypassedRequests} requests went past the cache over ${seeds.length} seeds`);
    else assert.is(bypassedRequests, 0, "no small write goes past the cache");
  });
}

// ---- assertion 55 ------------------------------------------------------------------------------

test("assertion 55: a write completed before a flush was issued survives a power cut once the flush completes", async () => {
  for (let seed = 1; seed <= 16; seed++) {
    const disk = await newDisk(seed);
    assert.is(await writeStamped(disk, 1, 40, 8), 0, `seed ${seed}: the write`);
    assert.is(await disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] }), 0, `seed ${seed}: the flush`);
    // Unflushed data elsewhere in the cache, and a write in flight at the cut.
    assert.is(await writeStamped(disk, 2, 100, 16), 0, `seed ${seed}: the second write`);
    const inFlight = startWrite(disk, 3, 200, 8);
    await disk.crash({ torn: seed % 2 === 1 });
    const versions = await versionsOf(disk, 40, 8);
    assert.equal(versions, Array(8).fill(1), `seed ${seed}: sectors 40..47 must hold w1 after the cut, hold ${versions.map(versionName).join(",")}`);
    await until(() => inFlight.status !== undefined, "the write in flight at the cut");
    assert.is(inFlight.status, EIO, `seed ${seed}: a write in flight at the cut completes with EIO`);
    await disk.close();
  }
});

test("assertion 55: a write in flight when the flush was issued may be lost even though the flush completes later", async () => {
  let lost = 0;
  let kept = 0;
  for (let seed = 1; seed <= 200; seed++) {
    const disk = await newDisk(seed);
    const write = startWrite(disk, 1, 64, 8);
    assert.is(write.status, undefined, "endIo never runs on the submitter's stack");
    const flush = startFlush(disk);
    await until(() => write.status !== undefined && flush.status !== undefined, "the write and the flush");
    assert.is(write.status, 0, `seed ${seed}: the write`);
    assert.is(flush.status, 0, `seed ${seed}: the flush`);
    await disk.crash({ torn: false });
    const versions = await versionsOf(disk, 64, 8);
    for (const version of versions) {
      assert.ok(version === 1 || version === INITIAL, `seed ${seed}: each sector holds w1 or the initial contents, got ${versions.map(versionName).join(",")}`);
    }
    if (versions.every((v) => v === 1)) kept++;
    else lost++;
    await disk.close();
  }
  assert.ok(lost >= 1, `over seeds 1..200 the write in flight at the flush's issue was never lost (kept ${kept})`);
  assert.ok(kept >= 1, `over seeds 1..200 the write in flight at the flush's issue was never kept (lost ${lost})`);
});

test("a write that completes while a flush is in flight is covered by a flush submitted after it completed", async () => {
  // A slow flush and fast writes, so the second write completes while flush A is in flight.
  const latency = { writeMin: 1, writeMax: 2, flushMin: 30, flushMax: 30 };
  for (let seed = 1; seed <= 12; seed++) {
    // Stepping per event-loop turn: flush B goes out between device steps.
    const disk = await newDisk(seed, { latency, completions: "turn" });
    const flushA = startFlush(disk);
    const write = startWrite(disk, 1, 8, 8);
    await until(() => write.status !== undefined, "the write");
    assert.is(write.status, 0);
    assert.is(flushA.status, undefined, `seed ${seed}: setup: flush A is still in flight when the write completes`);
    const flushB = startFlush(disk);
    await until(() => flushA.status !== undefined && flushB.status !== undefined, "both flushes");
    assert.is(flushA.status, 0);
    assert.is(flushB.status, 0);
    await disk.crash({ torn: seed % 2 === 0 });
    const versions = await versionsOf(disk, 8, 8);
    assert.equal(versions, Array(8).fill(1), `seed ${seed}: the write completed before flush B was submitted; got ${versions.map(versionName).join(",")}`);
    await disk.close();
  }
});

// ---- assertion 56 ------------------------------------------------------------------------------

test("assertion 56: a FUA write survives a power cut right after it completes", async () => {
  for (let seed = 1; seed <= 16; seed++) {
    const disk = await newDisk(seed);
    assert.is(await writeStamped(disk, 1, 0, 16), 0);
    assert.is(await writeStamped(disk, 2, 64, 8, ["FUA"]), 0);
    const inFlight = startWrite(disk, 3, 300, 8);
    await disk.crash({ torn: seed % 2 === 0 });
    const versions = await versionsOf(disk, 64, 8);
    assert.equal(versions, Array(8).fill(2), `seed ${seed}: sectors 64..71 must hold FUA write w2, hold ${versions.map(versionName).join(",")}`);
    await until(() => inFlight.status !== undefined, "the write in flight at the cut");
    await disk.close();
  }
});

test("a FUA write on a cache without FUA is the write and then a flush, and survives a power cut", async () => {
  for (let seed = 1; seed <= 8; seed++) {
    const disk = await newDisk(seed, { fua: false, limits: { maxSectors: 8 } });
    const trace = disk.startTrace();
    assert.is(await writeStamped(disk, 1, 32, 16, ["FUA"]), 0);
    const records = trace.stop();
    const dispatched = records.filter((r) => r.action === "D" && r.op === "write");
    const completed = records.filter((r) => r.action === "C" && r.op === "write");
    const flushes = deviceFlushes(records);
    const trail = `\n${formatBlkparse(records)}`;
    assert.is(dispatched.length, 2, `seed ${seed}: 16 sectors with maxSectors 8 make two requests${trail}`);
    for (const request of dispatched) assert.not.ok(request.flags.includes("FUA"), `seed ${seed}: no FUA reaches a device without FUA${trail}`);
    assert.is(flushes.length, 1, `seed ${seed}: exactly one flush follows the write${trail}`);
    assert.ok(completed.every((c) => c.seq < flushes[0].seq), `seed ${seed}: the flush is dispatched after the write's data completed${trail}`);
    assert.ok(records.some((r) => r.action === "C" && r.op === "flush" && r.seq > flushes[0].seq && r.error === undefined), `seed ${seed}: the flush completed${trail}`);
    assert.is(disk.stats().flushes, 1);
    await disk.crash({ torn: seed % 2 === 0 });
    const versions = await versionsOf(disk, 32, 16);
    assert.equal(versions, Array(16).fill(1), `seed ${seed}: the FUA write must survive, got ${versions.map(versionName).join(",")}`);
    await disk.close();
  }
});

test("assertion 56: without a write cache, PREFLUSH and FUA cause no device operation, and completed writes are durable", async () => {
  for (let seed = 1; seed <= 8; seed++) {
    const disk = await newDisk(seed, { writeCache: false, cacheBytes: undefined });
    const trace = disk.startTrace();
    assert.is(await writeStamped(disk, 1, 0, 8, ["PREFLUSH", "FUA"]), 0);
    assert.is(await writeStamped(disk, 2, 8, 8, ["FUA"]), 0);
    assert.is(await writeStamped(disk, 3, 16, 8, ["PREFLUSH"]), 0);
    assert.is(await disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] }), 0);
    assert.is(await writeStamped(disk, 4, 24, 8), 0);
    const records = trace.stop();
    const trail = `\n${formatBlkparse(records)}`;
    assert.is(deviceFlushes(records).length, 0, `seed ${seed}: no flush request reaches the device${trail}`);
    const dispatched = records.filter((r) => r.action === "D");
    assert.is(dispatched.length, 4, `seed ${seed}: one device operation per write, nothing else${trail}`);
    for (const request of dispatched) {
      assert.is(request.op, "write");
      assert.not.ok(request.flags.includes("FUA") || request.flags.includes("PREFLUSH"), `seed ${seed}: the block layer removed FUA and PREFLUSH${trail}`);
    }
    assert.is(disk.stats().flushes, 0, `seed ${seed}: stats().flushes`);
    assert.is(disk.stats().dirtyBytes, 0, `seed ${seed}: nothing is dirty without a cache`);
    await disk.crash({ torn: seed % 2 === 0 });
    const versions = await versionsOf(disk, 0, 32);
    const want = [1, 2, 3, 4].flatMap((id) => Array(8).fill(id));
    assert.equal(versions, want, `seed ${seed}: every completed write survives without a cache, got ${versions.map(versionName).join(",")}`);
    await disk.close();
  }
});

test("every bio in flight at a power cut completes with EIO afterwards, on every kind of device", async () => {
  const kinds = [
    { name: "cache", opts: {} },
    { name: "cache without FUA", opts: { fua: false } },
    { name: "no cache", opts: { writeCache: false, cacheBytes: undefined } },
  ];
  const wrong: string[] = [];
  for (const kind of kinds) {
    const disk = await newDisk(1, kind.opts);
    const results: Record<string, { status?: number }> = {
      "write": startWrite(disk, 1, 0, 8),
      "FUA write": startWrite(disk, 2, 8, 8, ["FUA"]),
      "PREFLUSH write": startWrite(disk, 3, 16, 8, ["PREFLUSH"]),
      "flush": startFlush(disk),
    };
    const buf = disk.alloc(4096);
    const read: { status?: number } = {};
    disk.queue.submitBio({ op: "read", sector: 0, segments: [{ buf }], endIo: (status) => { read.status = status; } });
    results.read = read;
    for (const [name, result] of Object.entries(results)) assert.is(result.status, undefined, `${kind.name}: the ${name} has not completed before the cut`);
    await disk.crash({ torn: false });
    await until(() => Object.values(results).every((r) => r.status !== undefined), "the bios in flight at the cut");
    for (const [name, result] of Object.entries(results)) {
      if (result.status !== EIO) wrong.push(`${kind.name}: the ${name} in flight at the cut completed with ${result.status}, not ${EIO}`);
    }
    await disk.close();
  }
  assert.equal(wrong, [], wrong.join("; "));
});

// ---- flush coalescing (blk-flush) ---------------------------------------------------------------

test("flushes submitted while a flush is in flight are all served by one next device flush", async () => {
  for (let seed = 1; seed <= 8; seed++) {
    const disk = await newDisk(seed);
    assert.is(await writeStamped(disk, 1, 0, 8), 0);
    const trace = disk.startTrace();
    const order: string[] = [];
    const a = startFlush(disk, order, "A");
    const others = ["B", "C", "D"].map((name) => startFlush(disk, order, name));
    assert.is(a.status, undefined, "A has not completed when B, C and D are submitted");
    await until(() => [a, ...others].every((f) => f.status !== undefined), "four flushes");
    const records = trace.stop();
    const trail = `\n${formatBlkparse(records)}`;
    for (const f of [a, ...others]) assert.is(f.status, 0, `seed ${seed}: every flush completes with 0`);
    const dispatched = deviceFlushes(records);
    assert.is(dispatched.length, 2, `seed ${seed}: A, then one flush for B, C and D${trail}`);
    const firstDone = records.find((r) => r.action === "C" && r.op === "flush");
    assert.ok(firstDone !== undefined && firstDone.seq < dispatched[1].seq, `seed ${seed}: the second flush starts after the first completes${trail}`);
    assert.is(order[0], "A", `seed ${seed}: A completes first (order ${order.join(",")})`);
    assert.is(order.length, 4);
    assert.is(disk.stats().flushes, 2);

    // A flush submitted after the previous one completed gets its own device flush.
    const trace2 = disk.startTrace();
    assert.is(await disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] }), 0);
    assert.is(deviceFlushes(trace2.stop()).length, 1, `seed ${seed}: a lone flush is one device flush`);
    assert.is(disk.stats().flushes, 3);
    await disk.close();
  }
});

// ---- counters ----------------------------------------------------------------------------------

test("stats(): bios, splits, flushes, fuaWrites, bytes and dirtyBytes move with the IO", async () => {
  const disk = await newDisk(7, { limits: { maxSectors: 8 } });
  assert.equal(disk.stats(), { bios: 0, splits: 0, flushes: 0, fuaWrites: 0, bypassWrites: 0, bytesRead: 0, bytesWritten: 0, dirtyBytes: 0 });

  assert.is(await writeStamped(disk, 1, 0, 8), 0);
  let s = disk.stats();
  assert.is(s.bios, 1);
  assert.is(s.bytesWritten, 4096);
  assert.is(s.dirtyBytes, 4096, "one 4 KiB version in the cache, not durable");
  assert.is(s.flushes, 0);
  assert.is(s.fuaWrites, 0);
  assert.is(s.bytesRead, 0);

  assert.is(await disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] }), 0);
  s = disk.stats();
  assert.is(s.bios, 2, "a flush bio counts as a bio");
  assert.is(s.flushes, 1);
  assert.is(s.dirtyBytes, 0, "a completed flush leaves nothing dirty");

  const buf = disk.alloc(4096);
  assert.is(await disk.queue.submitBioWait({ op: "read", sector: 0, segments: [{ buf }] }), 0);
  disk.free(buf);
  s = disk.stats();
  assert.is(s.bios, 3);
  assert.is(s.bytesRead, 4096);
  assert.is(s.bytesWritten, 4096, "a read writes nothing");

  assert.is(await writeStamped(disk, 2, 16, 16), 0);
  s = disk.stats();
  assert.is(s.bios, 4, "a split bio is still one bio");
  assert.ok(s.splits >= 1, `16 sectors with maxSectors 8 split (splits ${s.splits})`);
  assert.is(s.bytesWritten, 4096 + 8192);
  assert.ok(s.dirtyBytes > 0 && s.dirtyBytes <= 8192, `the 8 KiB write is dirty (dirtyBytes ${s.dirtyBytes})`);
  const dirtyBeforeFua = s.dirtyBytes;

  assert.is(await writeStamped(disk, 3, 64, 8, ["FUA"]), 0);
  s = disk.stats();
  assert.is(s.fuaWrites, 1);
  assert.is(s.bytesWritten, 4096 + 8192 + 4096);
  assert.is(s.dirtyBytes, dirtyBeforeFua, "a FUA write is durable: it adds nothing dirty");

  assert.is(await disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] }), 0);
  assert.is(disk.stats().dirtyBytes, 0);
  await disk.close();

  const bare = await newDisk(7, { writeCache: false, cacheBytes: undefined });
  assert.is(await writeStamped(bare, 1, 0, 8), 0);
  assert.is(bare.stats().dirtyBytes, 0, "nothing is dirty without a cache");
  assert.is(bare.stats().bytesWritten, 4096);
  assert.is(await bare.queue.submitBioWait({ op: "flush", sector: 0, segments: [] }), 0);
  assert.is(bare.stats().bios, 2);
  assert.is(bare.stats().flushes, 0, "a flush without a cache is no device flush");
  await bare.close();
});

// ---- large writes past a full cache (DiskOptions.cacheBypass) ----------------------------------

/** Sectors [sector, sector+sectors) as versions, after a power cut of a fresh run of `build`. */
async function versionsAfterCut(seed: number, build: (disk: Disk) => Promise<void>, opts: Partial<Parameters<typeof Disk.create>[0]>, sector: number, sectors: number): Promise<(number | undefined)[]> {
  const disk = await newDisk(seed, opts);
  await build(disk);
  await disk.crash({ torn: seed % 2 === 0 });
  const versions = await versionsOf(disk, sector, sectors);
  await disk.close();
  return versions;
}

test("cache bypass: a write of 64 KiB or more that finds the cache full goes to the media; smaller ones, and all with cacheBypass false, go to the cache", async () => {
  await rejectsDioError(Disk.create({ size: DISK_BYTES, cacheBypass: "yes" as never }), "EINVAL", "cacheBypass yes must be a boolean");
  // A 64 KiB cache (16 lines), written back inline: the writes at risk may fill all of it.
  const build = async (disk: Disk): Promise<void> => {
    assert.is(await writeStamped(disk, 1, 0, 128), 0, "w1: 64 KiB into the empty cache");
    assert.is(await writeStamped(disk, 2, 256, 128), 0, "w2: 64 KiB, the cache full");
    assert.is(await writeStamped(disk, 3, 200, 8), 0, "w3: 4 KiB, the cache full");
  };
  const disk = await newDisk(1);
  await build(disk);
  const s = disk.stats();
  assert.is(s.bypassWrites, 1, "w2 went past the cache");
  assert.is(s.fuaWrites, 0, "going past the cache is not a FUA write");
  assert.is(s.dirtyBytes, 64 << 10, "w1 (less its first line, written back for w3) and w3 are in the cache");
  assert.equal(await versionsOf(disk, 256, 128), Array(128).fill(2), "reads see w2");
  await disk.close();

  const lost = { w1: 0, w2: 0, w3: 0, w2WithoutBypass: 0 };
  for (let seed = 1; seed <= 16; seed++) {
    const w1 = await versionsAfterCut(seed, build, {}, 8, 120); // w1's lines still cached
    const w2 = await versionsAfterCut(seed, build, {}, 256, 128);
    const w3 = await versionsAfterCut(seed, build, {}, 200, 8);
    assert.ok(w1.every((v) => v === 1 || v === INITIAL), `seed ${seed}: w1's sectors hold w1 or the initial data`);
    assert.ok(w3.every((v) => v === 3 || v === INITIAL), `seed ${seed}: w3's sectors hold w3 or the initial data`);
    assert.equal(w2, Array(128).fill(2), `seed ${seed}: w2 went to the media, so it survives`);
    if (w1.includes(INITIAL)) lost.w1++;
    if (w3.includes(INITIAL)) lost.w3++;
    const kept = await versionsAfterCut(seed, build, { cacheBypass: false }, 256, 128);
    if (kept.includes(INITIAL)) lost.w2WithoutBypass++;
  }
  assert.ok(lost.w1 > 0 && lost.w3 > 0, `the cached writes are still at risk (lost in ${lost.w1} and ${lost.w3} of 16 cuts)`);
  assert.ok(lost.w2WithoutBypass > 0, "with cacheBypass false, w2 is cached and may be lost");

  const kept = await newDisk(1, { cacheBypass: false });
  await build(kept);
  assert.is(kept.stats().bypassWrites, 0);
  await kept.close();
});

test("cache bypass: the write replaces the cached versions of its sectors; reads, a flush and a power cut never bring an older one back", async () => {
  for (let seed = 1; seed <= 8; seed++) {
    const disk = await newDisk(seed);
    assert.is(await writeStamped(disk, 1, 8, 8), 0, "w1: one line, cached");
    assert.is(await writeStamped(disk, 2, 12, 2), 0, "w2: a newer version of part of it, cached");
    assert.is(await writeStamped(disk, 3, 256, 112), 0, "w3: 14 lines: the cache is full");
    assert.is(await writeStamped(disk, 4, 0, 136), 0, "w4: 17 lines over w1 and w2");
    assert.is(disk.stats().bypassWrites, 1, `seed ${seed}: w4 went past the cache`);
    const w4 = Array(136).fill(4);
    assert.equal(await versionsOf(disk, 0, 136), w4, `seed ${seed}: reads see w4`);
    if (seed % 2 === 0) {
      assert.is(await disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] }), 0);
      assert.equal(await versionsOf(disk, 0, 136), w4, `seed ${seed}: after a flush, reads see w4`);
    }
    await disk.crash({ torn: seed % 4 === 1 });
    assert.equal(await versionsOf(disk, 0, 136), w4, `seed ${seed}: after a power cut, w4 is there`);
    await disk.close();
  }
});

test("cache bypass: the bound is the whole cache written back inline, half of it with a destager thread", async () => {
  // 8 MiB cache, 2048 lines; 64 KiB writes (16 lines each) to fresh places.
  for (const [destage, cached] of [["inline", 128], ["background", 64]] as const) {
    const disk = await Disk.create({ size: 16 << 20, cacheBytes: 8 << 20, arenaBytes: ARENA_BYTES, destage });
    for (let i = 0; i < cached; i++) assert.is(await writeStamped(disk, i + 1, i * 128, 128), 0);
    assert.is(disk.stats().bypassWrites, 0, `${destage}: ${cached} writes of 64 KiB fit among the writes at risk`);
    assert.is(await writeStamped(disk, cached + 1, cached * 128, 128), 0);
    assert.is(disk.stats().bypassWrites, 1, `${destage}: the next one goes past the cache`);
    // A smaller write still goes into the cache.
    assert.is(await writeStamped(disk, cached + 2, (cached + 1) * 128, 120), 0);
    assert.is(disk.stats().bypassWrites, 1, `${destage}: a 60 KiB write goes into the cache`);
    await disk.close();
  }
});

// ---- when the device moves: completions "drain" and "turn" -------------------------------------

test("completions: a value other than \"drain\" or \"turn\" is refused with EINVAL", async () => {
  try {
    await Disk.create({ size: DISK_BYTES, completions: "sometimes" as "drain" });
    assert.unreachable("Disk.create accepted completions \"sometimes\"");
  } catch (error) {
    assert.is((error as { code?: string }).code, "EINVAL");
    assert.match(String((error as Error).message), /completions/);
  }
});

test("completions \"drain\": nothing completes while promise jobs keep running; requests submitted meanwhile are in flight together", async () => {
  const disk = await newDisk(1, { latency: { writeMin: 1, writeMax: 1 } });
  const trace = disk.startTrace();
  const a = startWrite(disk, 1, 0, 8);
  for (let i = 0; i < 5; i++) await Promise.resolve();
  assert.is(a.status, undefined, "a promise job does not let the device move");
  const b = startWrite(disk, 2, 64, 8);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal([a.status, b.status], [0, 0], "both completed once the CPU went idle");
  const records = trace.stop();
  const firstC = records.findIndex((r) => r.action === "C");
  assert.is(records.filter((r, i) => r.action === "D" && i < firstC).length, 2, "both were dispatched before either completed");
  await disk.close();
});

test("completions: \"turn\" moves the device one step per event-loop turn, \"drain\" runs its steps back to back", async () => {
  for (const completions of ["turn", "drain"] as const) {
    const disk = await newDisk(1, { latency: { writeMin: 1, writeMax: 1 }, completions });
    const buf = disk.alloc(4096);
    // The second write goes out from the first one's completion: a later device step.
    const first: { status?: number } = {};
    const second: { status?: number } = {};
    disk.queue.submitBio({ op: "write", sector: 0, segments: [{ buf }], endIo: (status) => {
      first.status = status;
      disk.queue.submitBio({ op: "write", sector: 64, segments: [{ buf }], endIo: (s) => { second.status = s; } });
    } });
    await new Promise((resolve) => setImmediate(resolve));
    assert.is(first.status, 0, `${completions}: the first write completed by the first turn`);
    if (completions === "turn") assert.is(second.status, undefined, "turn: a write submitted by a completion waits for the next turn");
    else assert.is(second.status, 0, "drain: a write submitted by a completion completes in the same idle period");
    for (let i = 0; i < 10 && second.status === undefined; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.is(second.status, 0);
    disk.free(buf);
    await disk.close();
  }
});

test("completions \"drain\": a long chain of device steps still lets timers run (a turn every 256 steps)", async () => {
  const disk = await newDisk(1, { latency: { writeMin: 1, writeMax: 1 } });
  const buf = disk.alloc(4096);
  const CHAIN = 5000;
  let completed = 0;
  let atTimer = -1;
  const timer = new Promise<void>((resolve) => setTimeout(() => { atTimer = completed; resolve(); }, 0));
  const chain = new Promise<void>((resolve) => {
    const next = (): void => {
      disk.queue.submitBio({ op: "write", sector: (completed % 64) * 8, segments: [{ buf }], endIo: (status) => {
        assert.is(status, 0);
        if (++completed === CHAIN) resolve();
        else next();
      } });
    };
    next();
  });
  await Promise.all([timer, chain]);
  assert.ok(atTimer >= 0 && atTimer < CHAIN, `the timer ran while the chain was going (after ${atTimer} of ${CHAIN} writes)`);
  disk.free(buf);
  await disk.close();
});

test("a deferred completion that throws does not stall the device: the other completions of the step still run (drain and turn)", async () => {
  for (const completions of ["drain", "turn"] as const) {
    const thrown: unknown[] = [];
    const onError = (error: unknown): void => { thrown.push(error); };
    process.on("uncaughtException", onError);
    try {
      const disk = await Disk.create({ size: 1 << 20, completions });
      const buf = disk.alloc(4096);
      const past = disk.size / 512; // a bio past the end completes (deferred) with -EIO
      disk.queue.submitBio({ op: "write", sector: past, segments: [{ buf }], endIo: () => { throw new Error("endIo threw"); } });
      const other = disk.queue.submitBioWait({ op: "write", sector: past, segments: [{ buf }] });
      const normal = disk.queue.submitBioWait({ op: "write", sector: 0, segments: [{ buf }] });
      const timeout = new Promise<string>((resolve) => setTimeout(() => resolve("never completed"), 1000));
      assert.is(await Promise.race([other, timeout]), -5, `${completions}: the other deferred bio completes`);
      assert.is(await Promise.race([normal, timeout]), 0, `${completions}: the bio in flight completes`);
      await disk.close();
      await new Promise((resolve) => setImmediate(resolve));
      assert.is(thrown.length, 1, `${completions}: the throw surfaced once`);
      assert.ok(String(thrown[0]).includes("endIo threw"));
    } finally {
      process.off("uncaughtException", onError);
    }
  }
});

test.run();
