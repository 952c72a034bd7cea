// The direct-IO lifecycle around the core's mapping loop, for synchronous calls: alignment (2.1),
// locking and the page cache (2.2), i_dio_count (2.3), mapping and bio building (core), submission,
// completion and result accounting (2.12-2.14), the hole fallback to buffered IO (2.8), i_size
// after an extending write, and the sync of O_SYNC/O_DSYNC files (6.1).
// see: fs/direct-io.c do_blockdev_direct_IO(), mm/filemap.c generic_file_direct_write().
import type { Disk } from "./disk.js";
import { DioError } from "./errors.js";
import { DIO_BIO, DIO_BIO_CAPACITY, DIO_BIO_SIZE, DIO_BVEC_CAPACITY, DIO_CALL_BYTES_MAX, DIO_IOV_CAPACITY, BVEC_SIZE, OP_READ, OP_WRITE } from "./layout.js";
import type { Semantics } from "./fs/filesystem.js";
import type { BioOwner } from "./block.js";

export const ENOTBLK = 15;
const STOP_EOF = 1;
const SKIP_HOLES_NONE = 0;
const SKIP_HOLES_310 = 1;
const SKIP_HOLES_4X = 2;
const BUILDER_3X = 0;
const BUILDER_VECS = 1;

/** What the engine needs from a file or the raw device. */
export interface DioTarget {
  disk: Disk;
  /** The core's inode number; 0 is the raw device, mapped onto itself. */
  ino: number;
  /** i_blkbits: the fs block (the logical block for the raw device). */
  fsBits: number;
  semantics: Semantics;
  /** i_size now. */
  size(): number;
  /** DIO_SKIP_HOLES: files yes, the raw device no. */
  skipHoles: boolean;
  /** Called when the mapping loop allocated blocks (the inode's allocation changed). */
  allocated(): void;
  /** On ENOSPC: frees what a commit can free; true when a retry may now succeed. */
  reclaim(syscall: string): Promise<boolean>;
  /** reclaim() for a synchronous (polled) call. */
  reclaimPolled(syscall: string): boolean;
  /** Whether reclaim() could free anything (checked before it runs; absent: it might). When it
   *  cannot, ENOSPC stands with the mapping just made, and no await comes between. */
  mayReclaim?(): boolean;
  /** After each write pass: the data up to byte `end` is written (i_size may move). */
  extended(end: number): void;
  /** Throws EIO when the filesystem or device died (a power cut) since the call began. */
  alive(syscall: string): void;
  /** The inode's metadata needs a commit before its data can be read back (IOMAP_F_DIRTY): a
   *  write-through (FUA) write alone would not make it durable. */
  metadataDirty(): boolean;
}

/** Per-call switches of the engine. */
export interface DioOptions {
  /** iomap's WRITE_THROUGH (an O_DSYNC write, spec 6.3): a pure overwrite of mapped blocks, on a
   *  device with FUA or without a volatile cache, goes out as FUA writes and needs no sync. */
  writeThrough?: boolean;
  /** A synchronous call (dioRunPolled): on ENOSPC the reclaim runs polled, with no await. */
  polled?: boolean;
}

/** One user segment, as the engine sees it: its address in the emulator's memory and length. */
export interface DioSegment {
  /** The caller's bytes. */
  user: Uint8Array;
  /** Where the engine reads or writes them: `user` itself when it lives in the arena, or a
   *  bounce buffer at the same page offset. */
  addr: number;
  /** user.length, read once. (Lengths of Uint8Arrays are read as `.length` throughout, which V8
   *  inlines; `.byteLength` and `.byteOffset` are builtin calls in Node 20, about 15 ns each.) */
  len: number;
  bounce?: Uint8Array;
}

/** Typed views of one disk's direct-IO tables, made once (the memory never grows) and kept on
 *  the disk (Disk.dioViews). */
interface DioViews { buffer: ArrayBufferLike; iov: Uint32Array; bvecs: Uint32Array; bios: DataView }
function views(disk: Disk): DioViews {
  return (disk.dioViews ??= makeViews(disk)) as DioViews;
}
function makeViews(disk: Disk): DioViews {
  const buffer = disk.memory.buffer;
  return {
    buffer,
    iov: new Uint32Array(buffer, disk.plan.dioIovBase, DIO_IOV_CAPACITY * (BVEC_SIZE / 4)),
    bvecs: new Uint32Array(buffer, disk.plan.dioBvecBase, DIO_BVEC_CAPACITY * (BVEC_SIZE / 4)),
    bios: new DataView(buffer, disk.plan.dioBioBase, DIO_BIO_CAPACITY * DIO_BIO_SIZE),
  };
}

function inArena(disk: Disk, user: Uint8Array): boolean {
  // A view alloc() handed out lies in the arena: known without reading its buffer and range.
  if (disk.arenaViews.has(user)) return true;
  const plan = disk.plan;
  const at = user.byteOffset;
  return at >= plan.arenaBase && at + user.length <= plan.arenaBase + plan.arenaBytes && user.buffer === disk.buffer;
}

/**
 * Engine segments for one pass; "address" per API.md. A buffer outside the emulator's memory is
 * bounced through one at the same page offset, so alignment and page boundaries fall where the
 * caller's address says. On failure nothing stays allocated.
 */
const NOTHING_TO_RELEASE = (): void => undefined;

export function passSegments(disk: Disk, buffers: Uint8Array[]): { segments: DioSegment[]; release(): void } {
  let inPlace = true;
  for (const user of buffers) if (user.length > 0 && !inArena(disk, user)) inPlace = false;
  if (inPlace) return { segments: inPlaceSegments(buffers), release: NOTHING_TO_RELEASE };
  const bounces: Uint8Array[] = [];
  const release = (): void => {
    for (const b of bounces.splice(0)) disk.free(b);
  };
  try {
    const segments = buffers.map((user): DioSegment => {
      if (user.length === 0 || inArena(disk, user)) return { user, addr: user.byteOffset, len: user.length };
      const pageOffset = user.byteOffset % 4096;
      const bounce = disk.alloc(pageOffset + user.length, 4096);
      bounces.push(bounce);
      return { user, addr: bounce.byteOffset + pageOffset, len: user.length, bounce: bounce.subarray(pageOffset) };
    });
    return { segments, release };
  } catch (error) {
    release();
    throw error;
  }
}

/** Engine segments for buffers that live in the arena (each its own address); one buffer, the
 *  common call, makes a one-element array (an empty array grown by push() reserves 17). */
export function inPlaceSegments(buffers: Uint8Array[]): DioSegment[] {
  if (buffers.length === 1) {
    const user = buffers[0];
    return [{ user, addr: user.byteOffset, len: user.length }];
  }
  return buffers.map((user) => ({ user, addr: user.byteOffset, len: user.length }));
}

/** The most bytes one pass maps: 16 MiB, or 1 MiB when buffers are bounced (arena room). */
const BOUNCED_PASS_BYTES_MAX = 1 << 20;

/** Whether a request runs as one pass (passes() would return one): the cheap test. */
export function onePass(disk: Disk, buffers: Uint8Array[], from: number, fsBlock: number): boolean {
  let total = 0;
  for (const b of buffers) total += b.length;
  return from + total <= firstPassEnd(disk, buffers, from, fsBlock).end;
}

/**
 * The bytes of a request that runs as one pass over buffers living in the arena (no bounce, no
 * pass loop): its total, or -1 when it is not such a request.
 */
export function inPlaceOnePass(disk: Disk, buffers: Uint8Array[], from: number, fsBlock: number): number {
  let total = 0;
  for (const b of buffers) {
    if (b.length > 0 && !inArena(disk, b)) return -1;
    total += b.length;
  }
  // firstPassEnd() for buffers that are not bounced, without its object.
  const end = Math.floor((from + DIO_CALL_BYTES_MAX) / fsBlock) * fsBlock;
  return from + total <= (end <= from ? from + DIO_CALL_BYTES_MAX : end) ? total : -1;
}

/** Where the first pass from `from` ends, and the most bytes any pass maps. */
function firstPassEnd(disk: Disk, buffers: Uint8Array[], from: number, fsBlock: number): { end: number; cap: number } {
  const bounced = buffers.some((b) => b.length > 0 && !inArena(disk, b));
  const cap = bounced ? BOUNCED_PASS_BYTES_MAX : DIO_CALL_BYTES_MAX;
  const end = Math.floor((from + cap) / fsBlock) * fsBlock;
  return { end: end <= from ? from + cap : end, cap };
}

/**
 * Cuts a request into passes. Each ends at a file offset that is a multiple of the fs block (a
 * pass boundary inside a new block would zero its tail, then overwrite it).
 */
export function passes(disk: Disk, buffers: Uint8Array[], from: number, fsBlock: number): Uint8Array[][] {
  const first = firstPassEnd(disk, buffers, from, fsBlock);
  const cap = first.cap;
  const list: Uint8Array[][] = [];
  let current: Uint8Array[] = [];
  let offset = from;
  let passEnd = first.end;
  for (const buffer of buffers) {
    let rest = buffer;
    while (rest.length > 0) {
      const take = Math.min(rest.length, passEnd - offset);
      current.push(rest.subarray(0, take));
      rest = rest.subarray(take);
      offset += take;
      if (offset === passEnd) {
        list.push(current);
        current = [];
        passEnd = offset + cap;
      }
    }
  }
  if (current.length > 0 || list.length === 0) list.push(current);
  return list;
}

/** What a whole direct-IO call did. */
export interface DioRun {
  /** Bytes transferred (reads clamped at EOF); for a write stopped by a hole, the direct part. */
  done: number;
  /** A negative errno, or 0. When set, `done` counts what earlier passes transferred. */
  error: number;
  /** A write stopped at a hole inside i_size: the caller writes the rest buffered. */
  holeAt: boolean;
  /** Every pass went out as FUA writes (write-through): the data is durable, no sync is needed. */
  fua: boolean;
}

/**
 * Runs a direct-IO call as passes of dioPass(): bounces per pass (copied in before a write, out
 * after a read), stops at EOF, a hole, or an error. `afterSubmit` runs after the last pass has
 * submitted its bios (the read path drops i_mutex there), and when the call ends (early or not):
 * it must do nothing the second time.
 */
export function dioRun(
  target: DioTarget, op: "read" | "write", buffers: Uint8Array[], from: number, dioBits: number,
  syscall: string, afterSubmit: () => void, options: DioOptions = {},
): Promise<DioRun> {
  const disk = target.disk;
  // The common call: one pass over buffers that live in the arena (no bounce, no pass loop).
  if (inPlaceOnePass(disk, buffers, from, 1 << target.fsBits) >= 0) {
    const segments = inPlaceSegments(buffers);
    return new Promise<DioRun>((resolve, reject) => {
      // dio_complete() of the one pass, straight to the call's result.
      const complete = (result: DioResult): void => {
        afterSubmit();
        if (result.ret < 0) {
          resolve({ done: 0, error: result.ret, holeAt: false, fua: false });
          return;
        }
        const hole = result.stop === -ENOTBLK;
        if (op === "write" && result.ret > 0) target.extended(from + result.ret);
        resolve({ done: result.ret, error: 0, holeAt: hole, fua: !hole && options.writeThrough === true && result.fua && result.ret > 0 });
      };
      // The submitter lets go of its reference once every bio is submitted: it completes the
      // call itself when they all completed first.
      const submitted = (dio: DioInFlight): void => {
        afterSubmit();
        dio.drop();
      };
      const failed = (error: unknown): void => {
        afterSubmit();
        reject(error);
      };
      try {
        const started = dioStart(target, op, segments, from, dioBits, syscall, { dioComplete: complete }, options);
        if (started instanceof Promise) started.then(submitted, failed);
        else submitted(started);
      } catch (error) {
        failed(error);
      }
    });
  }
  return dioRunPasses(target, op, buffers, from, dioBits, syscall, afterSubmit, options);
}

/** One pass a call's pass loop asks for: map and perform `segments` at `offset`. */
interface PassAsk {
  segments: DioSegment[];
  offset: number;
  /** The call's last pass: `afterSubmit` runs once its bios are submitted. */
  last: boolean;
}

/**
 * The pass loop of a call of several passes or with bounced buffers, written once for both ways
 * of waiting: it yields each pass to perform and is resumed with the pass's result (dioPass(),
 * awaited, or dioPassPolled()). Bounces are copied in before a write pass and out after a read
 * pass, and released when the pass ends, however the loop ends (the driver calls return()).
 */
function* passLoop(target: DioTarget, op: "read" | "write", buffers: Uint8Array[], from: number, options: DioOptions): Generator<PassAsk, DioRun, DioResult> {
  const list = passes(target.disk, buffers, from, 1 << target.fsBits);
  let done = 0;
  let fua = options.writeThrough === true;
  for (const [index, passBuffers] of list.entries()) {
    const { segments, release } = passSegments(target.disk, passBuffers);
    try {
      if (op === "write") for (const seg of segments) if (seg.bounce !== undefined) seg.bounce.set(seg.user);
      const pass = yield { segments, offset: from + done, last: index === list.length - 1 };
      if (pass.ret < 0) return { done, error: pass.ret, holeAt: false, fua: false };
      fua &&= pass.fua;
      if (op === "read") {
        // What the pass set up (data and zero-filled holes) goes back to the caller's buffers.
        let left = pass.result;
        for (const seg of segments) {
          const take = Math.min(left, seg.user.length);
          if (take > 0 && seg.bounce !== undefined) seg.user.set(seg.bounce.subarray(0, take));
          left -= take;
        }
      }
      done += pass.ret;
      if (op === "write" && pass.ret > 0) target.extended(from + done);
      if (pass.stop === -ENOTBLK) return { done, error: 0, holeAt: true, fua: false };
      const bytes = passBuffers.reduce((sum, b) => sum + b.length, 0);
      if (pass.ret < bytes || pass.eof) return { done, error: 0, holeAt: false, fua };
    } finally {
      release();
    }
  }
  return { done, error: 0, holeAt: false, fua: done > 0 && fua };
}

const NO_AFTER_SUBMIT = (): void => undefined;

/** dioRun() for a call of several passes or with bounced buffers. */
async function dioRunPasses(
  target: DioTarget, op: "read" | "write", buffers: Uint8Array[], from: number, dioBits: number,
  syscall: string, afterSubmit: () => void, options: DioOptions,
): Promise<DioRun> {
  const loop = passLoop(target, op, buffers, from, options);
  try {
    let step = loop.next();
    while (step.done !== true) {
      const ask = step.value;
      const pass = await dioPass(target, op, ask.segments, ask.offset, dioBits, syscall, ask.last ? afterSubmit : NO_AFTER_SUBMIT, options);
      step = loop.next(pass);
    }
    return step.value;
  } catch (error) {
    loop.return({ done: 0, error: 0, holeAt: false, fua: false }); // releases the pass's bounces
    throw error;
  } finally {
    afterSubmit();
  }
}

/**
 * dioRun() for a synchronous call (FileHandle.writeSync() and the like): the same passes, each
 * waited for by polling the device on the caller's stack (Device.poll()), with no promise and no
 * await anywhere. `afterSubmit` runs after the last pass has submitted its bios, and again when
 * the call ends (it must do nothing the second time: a lock's release that checks it is held).
 * The caller passes options with `polled` set.
 */
export function dioRunPolled(
  target: DioTarget, op: "read" | "write", buffers: Uint8Array[], from: number, dioBits: number,
  syscall: string, afterSubmit: () => void, options: DioOptions,
): DioRun {
  const disk = target.disk;
  try {
    // The common call: one pass over buffers that live in the arena.
    if (inPlaceOnePass(disk, buffers, from, 1 << target.fsBits) >= 0) {
      let result: DioResult;
      try {
        result = dioPassPolled(target, op, buffers.length === 1 ? oneSegment(buffers[0]) : inPlaceSegments(buffers), from, dioBits, syscall, afterSubmit, options);
      } finally {
        ONE_SEGMENT[0].user = NO_BYTES; // the caller's buffer is not kept
      }
      if (result.ret < 0) return { done: 0, error: result.ret, holeAt: false, fua: false };
      const hole = result.stop === -ENOTBLK;
      if (op === "write" && result.ret > 0) target.extended(from + result.ret);
      return { done: result.ret, error: 0, holeAt: hole, fua: !hole && options.writeThrough === true && result.fua && result.ret > 0 };
    }
    const loop = passLoop(target, op, buffers, from, options);
    try {
      let step = loop.next();
      while (step.done !== true) {
        const ask = step.value;
        step = loop.next(dioPassPolled(target, op, ask.segments, ask.offset, dioBits, syscall, ask.last ? afterSubmit : NO_AFTER_SUBMIT, options));
      }
      return step.value;
    } catch (error) {
      loop.return({ done: 0, error: 0, holeAt: false, fua: false });
      throw error;
    }
  } finally {
    afterSubmit();
  }
}

/** One in-place segment, reused by synchronous calls of one buffer: it is read only between
 *  its filling and the pass's mapping, with no other code in between. */
const NO_BYTES = new Uint8Array(0);
const ONE_SEGMENT: [DioSegment] = [{ user: NO_BYTES, addr: 0, len: 0 }];
function oneSegment(user: Uint8Array): DioSegment[] {
  const seg = ONE_SEGMENT[0];
  seg.user = user;
  seg.addr = user.byteOffset;
  seg.len = user.length;
  return ONE_SEGMENT;
}

/** A polled pass's completion: nothing to do, the submitter polls the dio itself (finished). */
const POLLED_COMPLETION: DioCompletion = { dioComplete: () => undefined };

/** dioPass() for a synchronous call: maps and submits, then polls the device until the dio
 *  completes (the submitter drops its reference first, as dio_await_completion() follows
 *  submission; a dio with no bio completes at that drop, with no poll). */
function dioPassPolled(
  target: DioTarget, op: "read" | "write", segments: DioSegment[], offset: number, dioBits: number,
  syscall: string, afterSubmit: () => void, options: DioOptions,
): DioResult {
  const started = dioStart(target, op, segments, offset, dioBits, syscall, POLLED_COMPLETION, options);
  if (started instanceof Promise) throw new Error("dioemu: a polled direct IO started asynchronously");
  const dio = started as InFlight;
  afterSubmit();
  dio.drop();
  if (!dio.finished) target.disk.device.poll(dio, syscall);
  return dio;
}

/** The alignment the call needs (spec 2.1): dio block bits, or throws EINVAL naming the value. */
export function dioBlockBits(target: DioTarget, buffers: Uint8Array[], offset: number, syscall: string): number {
  const lbs = target.disk.limits.logicalBlockSize;
  const lbsBits = 31 - Math.clz32(lbs);
  // One pass over the values: OR keeps every low bit (ToInt32 is modulo 2^32, and the units are
  // at most 64 KiB), so the OR is a multiple of a unit exactly when every value is.
  let bits = offset | 0;
  for (let i = 0; i < buffers.length; i++) bits |= buffers[i].byteOffset | buffers[i].length;
  if ((bits & ((1 << target.fsBits) - 1)) === 0) return target.fsBits;
  if ((bits & (lbs - 1)) === 0) return lbsBits;
  // Name the first value that breaks the logical block rule.
  if (offset % lbs !== 0) throw new DioError("EINVAL", syscall, `offset ${offset} is not a multiple of the ${lbs}-byte logical block size`);
  const index = buffers.findIndex((b) => b.byteOffset % lbs !== 0);
  if (index >= 0) {
    throw new DioError("EINVAL", syscall, `buffer ${index} address 0x${buffers[index].byteOffset.toString(16)} is not aligned to the ${lbs}-byte logical block size`);
  }
  const bad = buffers.findIndex((b) => b.length % lbs !== 0);
  throw new DioError("EINVAL", syscall, `length ${buffers[bad].length} of buffer ${bad} is not a multiple of the ${lbs}-byte logical block size`);
}

/** The outcome of one mapping-and-IO pass. */
export interface DioResult {
  /** What the call returns: the byte count, or a negative errno. */
  ret: number;
  /** Bytes set up (for a write stopped by a hole: the part done directly). */
  result: number;
  /** -ENOTBLK when a write stopped at a hole inside i_size (the caller writes the rest buffered). */
  stop: number;
  /** A read reached end of file. */
  eof: boolean;
  /** Every bio went out FUA (iomap write-through survived): no sync is needed. */
  fua: boolean;
}

/** Who a direct IO completes to: dio_complete()'s caller (the submitter's wait, or the AIO
 *  request). `fromBio` is true when a bio's completion dropped the last reference. */
export interface DioCompletion {
  dioComplete(result: DioResult, fromBio: boolean): void;
}

/**
 * One direct IO in flight: the submitter's reference plus one per bio (struct dio's refcount).
 * Whoever drops the last reference completes it (spec 2.12): the submitter, when every bio has
 * already completed, or the completion of the last bio.
 */
export interface DioInFlight {
  /** The submitter lets go of its reference (after its post-submission work). */
  drop(): void;
  /** Known at submission: the mapping error (0 or -errno), the bytes set up, and whether a write
   *  stopped at a hole (-ENOTBLK). They decide -EIOCBQUEUED (spec 2.12). */
  submitError: number;
  result: number;
  holeAt: boolean;
  /** The bios went out FUA (write-through). */
  fua: boolean;
}

/**
 * Maps one pass at `offset` (aligned to 1 << dioBits) and submits its bios; `complete` runs once,
 * with the result of dio_complete(), when the last reference drops: `fromBio` is true when a bio's
 * completion dropped it (the asynchronous completion), false when the submitter did. Locking,
 * i_dio_count and i_size are the caller's. see: fs/direct-io.c do_blockdev_direct_IO(), dio_bio_end_io(),
 * dio_complete().
 */
export function dioStart(
  target: DioTarget, op: "read" | "write", segments: DioSegment[], offset: number, dioBits: number,
  syscall: string, complete: DioCompletion, options: DioOptions = {},
): DioInFlight | Promise<DioInFlight> {
  // Nothing maps or goes to the device for a filesystem or device that lost power meanwhile.
  target.alive(syscall);
  // A zero-length request goes through setup and completes with 0 and no bio (spec 2.1).
  let nonEmpty = 0;
  for (const seg of segments) if (seg.len > 0) nonEmpty++;
  if (nonEmpty !== segments.length) segments = segments.filter((seg) => seg.len > 0);
  if (segments.length === 0) return new InFlight(complete, 0, 0, 0, false, op, offset, 0);
  if (segments.length > DIO_IOV_CAPACITY) throw new DioError("EINVAL", syscall, `${segments.length} buffers exceed IOV_MAX (${DIO_IOV_CAPACITY})`);
  const iSizeAtSubmit = target.size();
  const legacyBuilder = target.semantics === "legacy" || target.semantics === "seed";
  const skipHoles = !target.skipHoles ? SKIP_HOLES_NONE : legacyBuilder ? SKIP_HOLES_310 : SKIP_HOLES_4X;
  const builder = legacyBuilder ? BUILDER_3X : BUILDER_VECS;
  const opCode = op === "write" ? OP_WRITE : OP_READ;
  const blocks = offset / (1 << dioBits);
  const submitError = mapPass(target, opCode, segments, dioBits, blocks, iSizeAtSubmit, skipHoles, builder);
  if (submitError === -28 && op === "write" && (target.mayReclaim?.() ?? true)) {
    // ENOSPC: a commit may free blocks. Other calls may map while it runs, so the pass is mapped
    // again afterwards, whatever the commit freed (ENOSPC again if nothing).
    if (options.polled !== true) return reclaimAndRemap(target, op, segments, offset, dioBits, syscall, complete, options, iSizeAtSubmit, skipHoles, builder);
    target.reclaimPolled(syscall);
    return remap(target, op, segments, offset, dioBits, syscall, complete, options, iSizeAtSubmit, skipHoles, builder);
  }
  return submitMapped(target, op, offset, submitError, iSizeAtSubmit, complete, options);
}

/** dioStart() after ENOSPC: a commit, then the same pass mapped again (apart, so that the common
 *  call allocates no closure context). */
async function reclaimAndRemap(
  target: DioTarget, op: "read" | "write", segments: DioSegment[], offset: number, dioBits: number, syscall: string,
  complete: DioCompletion, options: DioOptions, iSize: number, skipHoles: number, builder: number,
): Promise<DioInFlight> {
  await target.reclaim(syscall);
  return remap(target, op, segments, offset, dioBits, syscall, complete, options, iSize, skipHoles, builder);
}

/** The pass mapped again after a reclaim, and submitted. */
function remap(
  target: DioTarget, op: "read" | "write", segments: DioSegment[], offset: number, dioBits: number, syscall: string,
  complete: DioCompletion, options: DioOptions, iSize: number, skipHoles: number, builder: number,
): DioInFlight {
  target.alive(syscall);
  const again = mapPass(target, op === "write" ? OP_WRITE : OP_READ, segments, dioBits, offset / (1 << dioBits), iSize, skipHoles, builder);
  return submitMapped(target, op, offset, again, iSize, complete, options);
}

/**
 * Runs the core's mapping loop over `segments`. The iov table, the mapping state and the bio
 * tables are the disk's, shared by every call: they are filled, mapped and read out with no await
 * in between.
 */
function mapPass(
  target: DioTarget, opCode: number, segments: DioSegment[], dioBits: number, blocks: number, iSize: number,
  skipHoles: number, builder: number,
): number {
  const { iov } = views(target.disk);
  for (let i = 0; i < segments.length; i++) {
    iov[i * 2] = segments[i].addr;
    iov[i * 2 + 1] = segments[i].len;
  }
  return target.disk.core.dio_map(opCode, target.ino, dioBits, target.fsBits, segments.length, blocks, iSize, skipHoles, builder);
}

/** struct dio: the references, the IO error, and what dio_complete() reports (it is its own
 *  DioResult once complete: one object per call). */
class InFlight implements DioInFlight, DioResult, BioOwner {
  refs = 1;
  ioError = 0;
  // The DioResult, set when the last reference drops.
  ret = 0;
  stop = 0;
  eof = false;
  constructor(
    private readonly complete: DioCompletion,
    readonly submitError: number,
    readonly result: number,
    /** The mapping loop's stop: STOP_EOF, -ENOTBLK (a hole), or 0. */
    private readonly mapStop: number,
    readonly fua: boolean,
    private readonly op: "read" | "write",
    private readonly offset: number,
    /** Where a read's count is clamped: i_size at submission, or the device's size. */
    private readonly end: number,
  ) {}

  get holeAt(): boolean {
    return this.mapStop === -ENOTBLK;
  }

  /** Every reference dropped: complete (what a polled wait watches). */
  get finished(): boolean {
    return this.refs === 0;
  }

  drop(): void {
    this.release(false);
  }

  /** A bio's completion (bio_end_io): one failed bio fails the whole call with EIO. */
  bioDone(status: number): void {
    if (status !== 0) this.ioError = -5;
    this.release(true);
  }

  private release(fromBio: boolean): void {
    if (this.refs <= 0) throw new Error("dioemu: a direct IO's reference dropped twice");
    if (--this.refs === 0) {
      this.finish();
      // A polled dio is watched by its submitter (finished): no call (the call site serves every
      // kind of completion, and is megamorphic).
      if (this.complete !== POLLED_COMPLETION) this.complete.dioComplete(this, fromBio);
    }
  }

  /** dio_complete()'s result. */
  private finish(): void {
    let transferred = this.result;
    // A read cut short by EOF reports what lies before EOF, though whole blocks were read.
    if (this.op === "read" && this.offset + transferred > this.end) transferred = Math.max(0, this.end - this.offset);
    // dio_complete(): the submission error, then page errors (none here), then the IO error,
    // then the count.
    this.ret = this.submitError !== 0 ? this.submitError : this.ioError !== 0 ? this.ioError : transferred;
    this.stop = this.mapStop === -ENOTBLK ? -ENOTBLK : 0;
    this.eof = this.mapStop === STOP_EOF;
  }
}

/** After the mapping loop: read its outcome and submit its bios, each holding a reference. */
function submitMapped(
  target: DioTarget, op: "read" | "write", offset: number, submitError: number, iSizeAtSubmit: number,
  complete: DioCompletion, options: DioOptions,
): DioInFlight {
  const { disk } = target;
  const core = disk.core;
  // dio_outcome(): result * 2^22 + bio count * 2^6 + (stop + 16) * 2 + new blocks.
  const outcome = core.dio_outcome();
  const result = Math.floor(outcome / 4194304); // exact: a power of two (no fmod call)
  const low = outcome - result * 4194304;
  const newBlocks = (low & 1) !== 0;
  const stop = ((low >>> 1) & 31) - 16;
  const bioCount = low >>> 6;
  if (newBlocks) target.allocated();
  // iomap write-through: only a pure overwrite (nothing newly allocated, no metadata awaiting a
  // commit) on a device that makes FUA writes durable; otherwise the dio needs its sync.
  const limits = disk.limits;
  // A write that moves i_size has metadata to commit (ext4 marks it IOMAP_F_DIRTY): no FUA.
  const fua = op === "write" && options.writeThrough === true && submitError === 0 && result > 0 &&
    offset + result <= iSizeAtSubmit && !newBlocks && !target.metadataDirty() &&
    (limits.fua || !limits.writeCache);
  const dio = new InFlight(complete, submitError, result, stop, fua, op, offset, target.ino === 0 ? disk.size : iSizeAtSubmit);
  // Submit every bio (WRITE_ODIRECT: SYNC, never PREFLUSH; FUA only for iomap write-through)
  // straight from the core's tables: the block layer copies what it keeps before returning.
  const { bvecs, bios } = views(disk);
  dio.refs += bioCount;
  for (let k = 0; k < bioCount; k++) {
    const at = k * DIO_BIO_SIZE;
    disk.queue.submitMapped(op, bios.getUint32(at + DIO_BIO.SECTOR, true), fua, bvecs,
      bios.getUint32(at + DIO_BIO.BVEC_FIRST, true), bios.getUint32(at + DIO_BIO.BVEC_COUNT, true),
      bios.getUint32(at + DIO_BIO.BYTES, true), dio);
  }
  return dio;
}

/**
 * Maps and performs one direct-IO pass and waits for it: the synchronous form of dioStart().
 * `afterSubmit` runs once every bio is submitted, before the wait (the read path drops i_mutex).
 */
export function dioPass(
  target: DioTarget, op: "read" | "write", segments: DioSegment[], offset: number, dioBits: number,
  syscall: string, afterSubmit: () => void, options: DioOptions = {},
): Promise<DioResult> {
  let resolve!: (result: DioResult) => void;
  const completed = new Promise<DioResult>((r) => { resolve = r; });
  const submitted = (dio: DioInFlight): Promise<DioResult> => {
    afterSubmit();
    // The submitter drops its reference last when every bio already completed: then it completes.
    dio.drop();
    return completed;
  };
  const started = dioStart(target, op, segments, offset, dioBits, syscall, { dioComplete: resolve }, options);
  return started instanceof Promise ? started.then(submitted) : submitted(started);
}
