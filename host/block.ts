// The block layer's entry (internal, not public API): takes a bio, checks it, writes its bvecs to
// shared memory, has the core split it to the queue limits, sequences PREFLUSH and FUA as
// blk-flush does, dispatches the pieces, and completes the bio once, after all of them, with the
// first error a piece reported. see: block/blk-core.c submit_bio_noacct(), block/blk-flush.c
import type { CoreExports } from "./core.js";
import { DioError } from "./errors.js";
import { SECTOR_BYTES, SECTOR_SHIFT } from "./constants.js";
import {
  BIO_ATOMIC, BIO_BYTES_MAX, BIO_FUA, BIO_NOWAIT, BIO_PREFLUSH, BIO_SYNC, BIO_VECS_MAX, BVEC_SIZE,
  CTRL, LAYOUT_BASE, OP_READ, OP_WRITE, PIECE_CAPACITY, PIECE_SIZE,
} from "./layout.js";
import type { Device, DeviceRequest } from "./device.js";
import type { Tracer } from "./trace.js";
import type { QueueLimits } from "./limits.js";
import { RangeAllocator } from "./ranges.js";

export type BioOp = "read" | "write" | "flush";
export type BioFlag = "SYNC" | "FUA" | "PREFLUSH" | "NOWAIT" | "ATOMIC";

/** One segment of a bio: `length` bytes at `offset` in `buf`, a buffer from Disk.alloc(). */
export interface BioSegment { buf: Uint8Array; offset?: number; length?: number }

/** A bio as the block layer's entry takes it. */
export interface Bio {
  op: BioOp;
  /** Start sector (512-byte units). Ignored for a flush. */
  sector: number;
  segments: BioSegment[];
  /** Instead of `segments` (then empty): the bvecs as (address, length) pairs in the disk's
   *  memory, as the core's mapping loop builds them; copied into the queue's bvec table. */
  bvecs?: Uint32Array;
  flags?: BioFlag[];
  /** Called once, from the completion path, with 0 or -errno. */
  endIo?: (status: number) => void;
}

const FLAG_BITS: Record<BioFlag, number> = {
  SYNC: BIO_SYNC, FUA: BIO_FUA, PREFLUSH: BIO_PREFLUSH, NOWAIT: BIO_NOWAIT, ATOMIC: BIO_ATOMIC,
};
const SYSCALL = "submit_bio";

/** The flags a trace shows (blktrace's RWBS letters): SYNC, FUA, PREFLUSH. */
const NO_FLAGS = Object.freeze([]) as unknown as string[];
function traceFlags(flags: readonly BioFlag[] | undefined): string[] {
  if (flags === undefined || flags.length === 0) return NO_FLAGS;
  return flags.filter((flag) => flag === "SYNC" || flag === "FUA" || flag === "PREFLUSH");
}

/** The flags a request at the device shows: SYNC, and FUA when the device does it natively. */
function pieceFlagsOf(flags: string[], fuaNative: boolean): string[] {
  if (flags === NO_FLAGS || flags === TRACE_SYNC || (flags === TRACE_SYNC_FUA && fuaNative)) return flags;
  return flags.filter((flag) => flag === "SYNC" || (flag === "FUA" && fuaNative));
}

function invalid(message: string): DioError {
  return new DioError("EINVAL", SYSCALL, message);
}

/** Who a bio of the direct-IO engine completes to (struct dio's bio_end_io). */
export interface BioOwner {
  bioDone(status: number): void;
}

/**
 * A checked bio on its way to the device: its bvecs as `count` (address, length) pairs from pair
 * `vecFirst` of `vecs` (a table the caller may reuse once start() returns, unless `owned`). A bio
 * that goes out as one piece (most direct IO) is also that piece's device request: one object
 * from submission to completion, with no closure.
 */
class PendingBio implements DeviceRequest {
  // The device request of the bio's one piece (set by start()).
  kind: "read" | "write";
  sectors = 0;
  bvecIndex = 0;
  bvecDone = 0;
  fua = false;
  /** What the trace shows for the piece at the device. */
  flags: string[] = NO_FLAGS;
  dueTick = 0;
  order = 0;
  flushMark = 0;
  /** The first bvec slot it holds in the pool, or -1. */
  first = -1;

  constructor(
    private readonly queue: BlockQueue,
    readonly op: "read" | "write",
    public sector: number,
    readonly bits: number,
    readonly bytes: number,
    public vecs: Uint32Array,
    public vecFirst: number,
    readonly count: number,
    /** `vecs` belongs to this bio (not a caller's scratch table). */
    public owned: boolean,
    /** What the trace shows for the bio. */
    readonly bioFlags: string[],
    readonly endIo: ((status: number) => void) | undefined,
    readonly owner: BioOwner | undefined,
  ) {
    this.kind = op;
  }

  /** The device completed the bio's one piece. */
  done(status: number): void {
    this.queue.endBio(this, status, this.first);
  }
}

/** Trace flags of the direct-IO engine's bios, shared by their records, so frozen. */
const TRACE_SYNC = Object.freeze(["SYNC"]) as unknown as string[];
const TRACE_SYNC_FUA = Object.freeze(["SYNC", "FUA"]) as unknown as string[];

/** Slots [0, SINGLE_SLOTS) of the bvec pool serve bios of one bvec (most direct IO) from a stack;
 *  the rest of the pool is handed out in ranges. */
const SINGLE_SLOTS = 1024;

/** The request queue of one disk. */
/** What a polled wait for one bio watches: its status once it ended. */
class PolledStatus {
  finished = false;
  status = 0;
  end(status: number): void {
    this.status = status;
    this.finished = true;
  }
}

export class BlockQueue {
  private readonly bvecs: RangeAllocator;
  /** Free slots of the single-bvec part of the pool. */
  private readonly singles: number[] = [];
  private readonly bvecView: Uint32Array;
  private readonly pieceView: Uint32Array;
  private readonly statView: BigUint64Array;
  /** The memory's buffer, read once: it never grows, and the getter is not free on shared memory. */
  private readonly buffer: ArrayBufferLike;
  private readonly singleSlots: number;
  /** Bios waiting for bvec slots, like submitters sleeping for tags. */
  private readonly waiting: PendingBio[] = [];

  constructor(
    private readonly core: CoreExports,
    memory: WebAssembly.Memory,
    private readonly device: Device,
    private readonly tracer: Tracer,
    private readonly limits: QueueLimits,
    private readonly arena: { base: number; end: number },
    layout: { bvecBase: number; bvecCapacity: number; pieceBase: number },
    private readonly sectorCount: number,
  ) {
    const singles = Math.min(SINGLE_SLOTS, layout.bvecCapacity >> 4);
    for (let slot = singles - 1; slot >= 0; slot--) this.singles.push(slot);
    this.singleSlots = singles;
    this.bvecs = new RangeAllocator(singles, layout.bvecCapacity - singles);
    this.buffer = memory.buffer;
    this.bvecView = new Uint32Array(memory.buffer, layout.bvecBase, layout.bvecCapacity * (BVEC_SIZE / 4));
    this.pieceView = new Uint32Array(memory.buffer, layout.pieceBase, PIECE_CAPACITY * (PIECE_SIZE / 4));
    this.statView = new BigUint64Array(memory.buffer, LAYOUT_BASE + CTRL.STAT_BIOS, 8);
  }

  /** Submits a bio; its endIo runs later with 0 or -errno. Throws DioError EINVAL when malformed. */
  submitBio(bio: Bio): void {
    this.submitChecked(bio, bio.endIo);
  }

  /** submitBio() with the completion given apart from the bio (submitBioWait's). */
  private submitChecked(bio: Bio, endIo: ((status: number) => void) | undefined): void {
    const { bits, bytes } = this.checkBio(bio);
    if (bio.op === "flush") {
      Atomics.add(this.statView, 0, 1n); // STAT_BIOS: every bio counts, flushes included
      this.tracer.emit("Q", "flush", 0, 0, traceFlags(bio.flags), this.device.now);
      this.device.requestFlush((status) => {
        // Without a cache the flush ends at the block layer, with no device operation.
        if (!this.limits.writeCache) this.tracer.emit("C", "flush", 0, 0, traceFlags(bio.flags), this.device.now, status);
        endIo?.(status);
      });
      return;
    }
    let vecs: Uint32Array;
    if (bio.bvecs !== undefined) {
      vecs = bio.bvecs.slice();
    } else {
      vecs = new Uint32Array(bio.segments.length * 2);
      bio.segments.forEach((seg, i) => {
        const offset = seg.offset ?? 0;
        vecs[i * 2] = seg.buf.byteOffset + offset;
        vecs[i * 2 + 1] = seg.length ?? seg.buf.byteLength - offset;
      });
    }
    this.start(new PendingBio(this, bio.op, bio.sector, bits, bytes, vecs, 0, vecs.length >> 1, true, traceFlags(bio.flags), endIo, undefined));
  }

  /**
   * @internal The direct-IO engine's entry: a write (WRITE_ODIRECT: SYNC, with FUA when `fua`) or
   * a read of `count` bvecs at pair `vecFirst` of `vecs`, `bytes` long, as the core's mapping loop
   * built and checked them (inside the arena, logical-block multiples, at most BIO_MAX_VECS).
   * `vecs` may be reused once this returns.
   */
  submitMapped(op: "read" | "write", sector: number, fua: boolean, vecs: Uint32Array, vecFirst: number, count: number, bytes: number, owner: BioOwner): void {
    const write = op === "write";
    this.start(new PendingBio(this, op, sector, write ? (fua ? BIO_SYNC | BIO_FUA : BIO_SYNC) : 0, bytes, vecs, vecFirst, count, false,
      write ? (fua ? TRACE_SYNC_FUA : TRACE_SYNC) : NO_FLAGS, undefined, owner));
  }

  /** @internal A flush bio (REQ_PREFLUSH with no data) from inside dioemu, and its status: what
   *  submitBioWait({ op: "flush" }) does, without checking a bio that is known to be valid. */
  flushWait(): Promise<number> {
    return new Promise((resolve) => {
      Atomics.add(this.statView, 0, 1n); // STAT_BIOS: every bio counts, flushes included
      this.tracer.emit("Q", "flush", 0, 0, NO_FLAGS, this.device.now);
      this.device.requestFlush((status) => {
        // Without a cache the flush ends at the block layer, with no device operation.
        if (!this.limits.writeCache) this.tracer.emit("C", "flush", 0, 0, NO_FLAGS, this.device.now, status);
        resolve(status);
      });
    });
  }

  /**
   * @internal Submits a bio and waits for it by polling the device on the caller's stack (a
   * synchronous call: Device.poll()); returns its status (0 or -errno). A flush bio too.
   */
  submitBioPolled(bio: Bio, syscall: string): number {
    const wait = new PolledStatus();
    const endIo = bio.endIo;
    this.submitChecked(bio, (status) => {
      endIo?.(status);
      wait.end(status);
    });
    if (!wait.finished) this.device.poll(wait, syscall);
    return wait.status;
  }

  /** Submits a bio and resolves with its status (0 or -errno). */
  submitBioWait(bio: Bio): Promise<number> {
    return new Promise((resolve, reject) => {
      const endIo = bio.endIo;
      try {
        this.submitChecked(bio, (status) => { endIo?.(status); resolve(status); });
      } catch (error) {
        reject(error);
      }
    });
  }

  /** Checks a bio; returns its flag bits and its length in bytes (counted once, here). */
  private checkBio(bio: Bio): { bits: number; bytes: number } {
    if (bio === null || typeof bio !== "object") throw invalid("a bio must be an object");
    if (bio.op !== "read" && bio.op !== "write" && bio.op !== "flush") throw invalid(`op ${String(bio.op)} must be read, write or flush`);
    let bits = 0;
    for (const flag of bio.flags ?? []) {
      if (!(flag in FLAG_BITS)) throw invalid(`flag ${String(flag)} is not one of ${Object.keys(FLAG_BITS).join(", ")}`);
      bits |= FLAG_BITS[flag];
    }
    if (!Array.isArray(bio.segments)) throw invalid("segments must be an array");
    if (bio.op === "flush") {
      if (bio.segments.length !== 0 || bio.bvecs !== undefined) throw invalid("a flush bio carries no data segments");
      return { bits, bytes: 0 };
    }
    if (!Number.isInteger(bio.sector) || bio.sector < 0) throw invalid(`sector ${String(bio.sector)} must be a non-negative integer`);
    let bytes = 0;
    if (bio.bvecs !== undefined) {
      const vecs = bio.bvecs;
      if (!(vecs instanceof Uint32Array) || bio.segments.length !== 0) throw invalid("bvecs must be a Uint32Array of (address, length) pairs, with no segments beside them");
      const count = vecs.length >> 1;
      if (count === 0 || (vecs.length & 1) !== 0) throw invalid(`a ${bio.op} bio needs at least one (address, length) pair`);
      if (count > BIO_VECS_MAX) throw invalid(`${count} segments exceed BIO_MAX_VECS (${BIO_VECS_MAX})`);
      for (let i = 0; i < count; i++) {
        const addr = vecs[i * 2];
        const length = vecs[i * 2 + 1];
        if (length === 0 || addr < this.arena.base || addr + length > this.arena.end) throw invalid(`segment ${i} lies outside the IO-buffer arena`);
        bytes += length;
      }
      return this.checkLength(bio, bits, bytes);
    }
    if (bio.segments.length === 0) throw invalid(`a ${bio.op} bio needs at least one segment`);
    if (bio.segments.length > BIO_VECS_MAX) throw invalid(`${bio.segments.length} segments exceed BIO_MAX_VECS (${BIO_VECS_MAX})`);
    bio.segments.forEach((seg, i) => {
      const offset = seg.offset ?? 0;
      const length = seg.length ?? seg.buf?.byteLength - offset;
      if (!(seg.buf instanceof Uint8Array) || seg.buf.buffer !== this.buffer) {
        throw invalid(`segment ${i} is not a buffer from Disk.alloc()`);
      }
      if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length <= 0 || offset + length > seg.buf.byteLength) {
        throw invalid(`segment ${i} range offset ${offset} length ${length} does not fit its ${seg.buf.byteLength}-byte buffer`);
      }
      const addr = seg.buf.byteOffset + offset;
      if (addr < this.arena.base || addr + length > this.arena.end) throw invalid(`segment ${i} lies outside the IO-buffer arena`);
      bytes += length;
    });
    return this.checkLength(bio, bits, bytes);
  }

  private checkLength(bio: Bio, bits: number, bytes: number): { bits: number; bytes: number } {
    if (bytes > BIO_BYTES_MAX) throw invalid(`bio of ${bytes} bytes exceeds the ${BIO_BYTES_MAX}-byte maximum`);
    if (bytes % this.limits.logicalBlockSize !== 0) {
      throw invalid(`bio length ${bytes} is not a multiple of the ${this.limits.logicalBlockSize}-byte logical block size`);
    }
    if ((bio.sector * SECTOR_BYTES) % this.limits.logicalBlockSize !== 0) {
      throw invalid(`sector ${bio.sector} is not aligned to the ${this.limits.logicalBlockSize}-byte logical block size`);
    }
    return { bits, bytes };
  }

  /** @internal Bios waiting for bvec slots (tests). */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** A power cut: bios still waiting for bvec slots were in flight; they fail with EIO. */
  failWaiting(status: number): void {
    // Through endBio(), which completes a direct-IO bio to its dio (owner) and any other to endIo.
    for (const pending of this.waiting.splice(0)) this.device.defer(() => this.endBio(pending, status, -1));
  }

  private start(bio: PendingBio): void {
    const { bytes, bits, count } = bio;
    // see: bio_check_eod(): checked here in full precision (the core sees 32-bit sectors).
    if (bio.sector + bytes / SECTOR_BYTES > this.sectorCount) {
      this.failBeyondEnd(bio);
      return;
    }
    const first = count === 1 && this.singles.length > 0 ? this.singles.pop()! : this.bvecs.allocate(count, 1);
    if (first < 0) {
      this.waitForSlots(bio);
      return;
    }
    bio.first = first;
    const view = this.bvecView;
    const src = bio.vecs;
    if (count <= 4) {
      for (let i = 0, from = bio.vecFirst * 2, to = first * 2; i < count * 2; i++) view[to + i] = src[from + i];
    } else {
      // A long list in one block copy (a loop costs about 2 ns an element).
      view.set(src.subarray(bio.vecFirst * 2, (bio.vecFirst + count) * 2), first * 2);
    }
    this.tracer.emit("Q", bio.op, bio.sector, bytes >> SECTOR_SHIFT, bio.bioFlags, this.device.now);
    const isWrite = bio.op === "write";
    const pieces = this.core.blk_split(isWrite ? OP_WRITE : OP_READ, bits, bio.sector, first, count, 0, bytes, 0);
    if (pieces < 0) {
      this.failSplit(bio, pieces);
      return;
    }
    const cached = this.limits.writeCache;
    const fua = isWrite && cached && (bits & BIO_FUA) !== 0;
    const fuaNative = fua && this.limits.fua;
    const preflush = isWrite && cached && (bits & BIO_PREFLUSH) !== 0;
    const tailStatus = this.core.blk_split_tail_status();
    // The common case: one piece, no flush to sequence around it. The bio is its request.
    if (pieces === 1 && tailStatus === 0 && !preflush && fua === fuaNative) {
      const pv = this.pieceView;
      bio.sector = pv[0];
      bio.sectors = pv[1];
      bio.bvecIndex = pv[2];
      bio.bvecDone = pv[3];
      bio.fua = fuaNative;
      bio.flags = pieceFlagsOf(bio.bioFlags, fuaNative);
      this.device.dispatch(bio);
      return;
    }
    this.startPieces(bio, pieces, tailStatus, fua, fuaNative, preflush);
  }

  /** A bio past the end of the device: queued, then completed with EIO (nothing moves). */
  private failBeyondEnd(bio: PendingBio): void {
    const sectors = bio.bytes >> SECTOR_SHIFT;
    Atomics.add(this.statView, 0, 1n);
    this.tracer.emit("Q", bio.op, bio.sector, sectors, bio.bioFlags, this.device.now);
    this.device.defer(() => {
      this.tracer.emit("C", bio.op, bio.sector, sectors, bio.bioFlags, this.device.now, -5);
      this.endBio(bio, -5, -1);
    });
  }

  /** No bvec slots free: the bio waits, with its own copy of its bvecs (the caller's table is
   *  scratch space for its next mapping). */
  private waitForSlots(bio: PendingBio): void {
    if (!bio.owned) {
      bio.vecs = bio.vecs.slice(bio.vecFirst * 2, (bio.vecFirst + bio.count) * 2);
      bio.vecFirst = 0;
      bio.owned = true;
    }
    this.waiting.push(bio);
  }

  /** The split refused the bio: it completes with that error. */
  private failSplit(bio: PendingBio, status: number): void {
    const sectors = bio.bytes >> SECTOR_SHIFT;
    this.device.defer(() => {
      this.tracer.emit("C", bio.op, bio.sector, sectors, bio.bioFlags, this.device.now, status);
      this.endBio(bio, status, bio.first);
    });
  }

  /** A bio split into several pieces, or sequenced around a flush (PREFLUSH, emulated FUA). */
  private startPieces(bio: PendingBio, pieces: number, tailStatus: number, fua: boolean, fuaNative: boolean, preflush: boolean): void {
    const flags = bio.bioFlags;
    const first = bio.first;
    const sectors = bio.bytes >> SECTOR_SHIFT;
    const pv = this.pieceView;
    // Read the pieces out now: the piece table is scratch space for the next split.
    const requests: { sector: number; sectors: number; index: number; done: number }[] = [];
    for (let k = 0; k < pieces; k++) {
      const at = k * (PIECE_SIZE / 4);
      requests.push({ sector: pv[at], sectors: pv[at + 1], index: pv[at + 2], done: pv[at + 3] });
    }
    for (let k = 0; k + 1 < pieces; k++) {
      const piece = requests[k];
      this.tracer.emit("X", bio.op, piece.sector + piece.sectors, piece.sectors, flags, this.device.now);
    }
    // A remainder that could not be split ends with its error; the pieces in front of it go out.
    const tail = tailStatus === 0 ? undefined : (() => {
      const last = requests[requests.length - 1];
      const start = last.sector + last.sectors;
      return { sector: start, sectors: bio.sector + sectors - start, status: tailStatus };
    })();
    const pieceFlags = pieceFlagsOf(flags, fuaNative);
    let remaining = pieces + (tail === undefined ? 0 : 1);
    let status = 0;
    const pieceDone = (pieceStatus: number): void => {
      if (pieceStatus !== 0 && status === 0) status = pieceStatus;
      if (--remaining > 0) return;
      // A FUA write on a cache without FUA is the write followed by a flush.
      if (fua && !fuaNative && status === 0) {
        this.device.requestFlush((flushStatus) => this.endBio(bio, flushStatus, first));
      } else {
        this.endBio(bio, status, first);
      }
    };
    const dispatchAll = (): void => {
      if (tail !== undefined) {
        this.device.defer(() => {
          this.tracer.emit("C", bio.op, tail.sector, tail.sectors, flags, this.device.now, tail.status);
          pieceDone(tail.status);
        });
      }
      for (const piece of requests) {
        this.device.dispatch({
          kind: bio.op, sector: piece.sector, sectors: piece.sectors,
          bvecIndex: piece.index, bvecDone: piece.done, fua: fuaNative, flags: pieceFlags, done: pieceDone,
        });
      }
    };
    // PREFLUSH: the cache is flushed before the bio's own data is handled.
    if (preflush) {
      this.device.requestFlush((flushStatus) => {
        if (flushStatus !== 0) {
          this.endBio(bio, flushStatus, first);
          return;
        }
        dispatchAll();
      });
    } else {
      dispatchAll();
    }
  }

  /** @internal The bio is done: its bvec slots go back to the pool, then its completion runs. */
  endBio(bio: PendingBio, status: number, first: number): void {
    if (first >= 0) {
      if (first < this.singleSlots) this.singles.push(first);
      else this.bvecs.release(first);
      if (this.waiting.length > 0) this.retryWaiting();
    }
    if (bio.owner !== undefined) bio.owner.bioDone(status);
    else bio.endIo?.(status);
  }

  /** Starts the bios that waited for bvec slots, in arrival order, while slots last. */
  private retryWaiting(): void {
    while (this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      const before = this.waiting.length;
      this.start(next);
      if (this.waiting.length > before) {
        // Still short: start() queued it at the back; it keeps its place at the front.
        this.waiting.unshift(this.waiting.pop()!);
        break;
      }
    }
  }
}
