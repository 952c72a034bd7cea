// The filesystem: mkfs, mount, inodes with i_size, a lock and a count of direct IO in flight, a
// flat directory, buffered IO through the page cache with delayed allocation, and crash-safe
// metadata by copy-on-write commits (docs/format.md says why that is safe). Block mapping
// (get_block) and free space live in the core (assembly/fs.ts).
import type { Disk } from "../disk.js";
import { DioError, type ErrnoName } from "../errors.js";
import { CTRL, LAYOUT_BASE, FS_INODE_SIZE, FS_EXTENT_SIZE, MAP_MAPPED, FS_INODES_MAX } from "../layout.js";
import { SECTOR_BYTES } from "../constants.js";
import type { Bio, BioFlag, BioSegment } from "../block.js";
import { crc32c } from "./crc32c.js";
import {
  FORMAT_VERSION, NAME_BYTES_MAX, SUPER_BYTES, SUPER_SLOT_OFFSETS, checkMeta, decodeMeta,
  decodeSuperblock, encodeMeta, encodeSuperblock, planGeometry, type Geometry, type InodeRecord,
  type Superblock,
} from "./format.js";
import { Mutex } from "./mutex.js";
import { PAGE_BYTES, PageCache, bitCount, type Page } from "./pagecache.js";
import { FileHandle } from "./filehandle.js";
import { O_ACCMODE, O_CREAT, O_EXCL, O_TRUNC } from "../constants.js";
import { WorkQueue } from "../workqueue.js";
import type { DurabilityRecorder } from "../crash/oracle.js";

export type Semantics = "legacy" | "seed" | "merged" | "iomap";
export const SEMANTICS: readonly Semantics[] = ["legacy", "seed", "merged", "iomap"];

export interface MkfsOptions { blockSize?: 1024 | 2048 | 4096; inodes?: number }
export interface MountOptions {
  semantics?: Semantics;
  /** Mount -o sync: every inode is IS_SYNC. */
  sync?: boolean;
  /** With `semantics: "legacy"`: model XFS's 3.7 write path, whose caller synced only on a positive
   *  count, so a queued O_DSYNC AIO write is never synced at all (spec 7.2), instead of the
   *  generic/ext4/blockdev path that syncs at submission, before the data completed. */
  legacyXfs?: boolean;
  /** The clock of file times (mtimeMs, ctimeMs): default Date.now (read once per run of code, as
   *  a coarse clock: a batch of completions stamps one time). A fixed clock makes the image
   *  a function of the workload alone (the WebAssembly benchmark suite checksums it). A clock
   *  that throws or returns something other than a finite number fails no IO: the times it would
   *  have set keep their values (a new file's are 0), and a warning (process.emitWarning, or
   *  console.warn) says why. */
  clock?: () => number;
}

/**
 * The default clock of file times: Date.now(), read once per run of code (kept until the
 * microtask queue runs next) and at least every COARSE_READS_MAX readings (a long synchronous run,
 * such as a loop of writeSync() calls, keeps no promise job from running), so that a batch of
 * completions stamps its files with one reading. Date.now() counts whole milliseconds, so calls
 * within one run nearly always read the same value anyway; and Linux stamps file times from a
 * coarse clock too (current_time(): the coarse real-time clock, a tick's resolution).
 */
let coarseNow = NaN;
let coarseReads = 0;
const COARSE_READS_MAX = 64;
const expireCoarseNow = (): void => {
  coarseNow = NaN;
};
const RESOLVED = Promise.resolve();
function coarseClock(): number {
  if (Number.isNaN(coarseNow)) {
    coarseNow = Date.now();
    coarseReads = 0;
    void RESOLVED.then(expireCoarseNow);
  } else if (++coarseReads >= COARSE_READS_MAX) {
    coarseNow = Date.now();
    coarseReads = 0;
  }
  return coarseNow;
}

/**
 * The mount's clock as the filesystem calls it: times are set at points where the IO itself is
 * done (a completion, the end of a write), so a clock that fails must not fail or strand the IO.
 * A failure reads as NaN: the times it would have set stay as they were (stampTimes()).
 */
function timesClock(clock: () => number): () => number {
  return () => {
    let now: unknown;
    try {
      now = clock();
    } catch (error) {
      warn(`the mount's clock threw (${(error as Error)?.message ?? String(error)}); file times keep their values`);
      return NaN;
    }
    if (typeof now !== "number" || !Number.isFinite(now)) {
      warn(`the mount's clock returned ${String(now)}, not a finite number of milliseconds; file times keep their values`);
      return NaN;
    }
    return now;
  };
}

function warn(message: string): void {
  if (typeof process !== "undefined" && typeof process.emitWarning === "function") process.emitWarning(`dioemu: ${message}`);
  else console.warn(`dioemu: ${message}`);
}

/** The sync-work record the seed patch attaches to a dsync direct write (spec 3.1b). */
export interface SyncWork {
  /** The AIO request it completes, if any. */
  iocb: unknown;
  offset: number;
  len: number;
  ret: number;
}

/** One step of a direct IO's completion, for tests and tracing (Filesystem.onDioStep). */
export interface DioStep {
  step: "queue_created" | "queue_installed" | "queue_discarded" | "work_alloc" | "work_free" | "work_queued" |
    "end_io" | "dio_end" | "sync_start" | "sync_end" | "event" | "submit_sync" | "evict_inodes" | "queue_destroyed" | "put_super";
  ino?: number;
  offset?: number;
  res?: number;
  /** The device's virtual clock at the step. */
  time: number;
}

/** What a filesystem's direct-IO completion machinery has done so far. */
export interface DioStats {
  queuesCreated: number;
  queuesDiscarded: number;
  workAllocated: number;
  workFreed: number;
  workQueued: number;
  /** generic_write_sync() calls made on behalf of direct writes (caller, worker or submission). */
  syncs: number;
}

let mountSerial = 0;

/** stat() of a file (API.md). */
export interface Stats {
  ino: number;
  size: number;
  /** 512-byte units: mapped blocks plus blocks reserved for dirty pages. */
  blocks: number;
  blksize: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** The largest file: file block numbers are 32-bit in the core. */
export const FILE_BYTES_MAX = 2 ** 40;
const IO_CHUNK_BYTES = 1 << 20;
const BIO_SEGMENTS_MAX = 256;

function fail(code: ErrnoName, syscall: string, message: string): DioError {
  return new DioError(code, syscall, message);
}

/** The in-memory inode: what the VFS keeps (struct inode), plus our delayed-allocation count. */
export class Inode {
  /** Bumped when size or allocation change (what datasync must persist). */
  dataVersion = 0;
  /** Bumped on any metadata change (what a full sync must persist). */
  allVersion = 0;
  /** The dataVersion at which the whole file below `holeFreeEnd` was found mapped (no hole), or
   *  -1: until size or allocation change again, a range below it needs no lookup. */
  holeFreeVersion = -1;
  holeFreeEnd = 0;
  /** The dataVersion at which the file was found to have a hole below its size, or -1. */
  holeyVersion = -1;
  /** Open file handles. */
  openCount = 0;
  /** Direct IO in flight (i_dio_count) and those waiting for it to reach 0 (inode_dio_wait). */
  dioCount = 0;
  private dioWaiters: (() => void)[] = [];
  /** The inode lock (i_mutex): buffered writes, truncate and direct IO take it. */
  readonly lock = new Mutex();

  constructor(
    readonly ino: number,
    public size: number,
    public mtimeMs: number,
    public ctimeMs: number,
    /** The directory entry; null once unlinked (the inode lives on while open). */
    public name: string | null,
  ) {}

  /** inode_dio_begin(). */
  dioBegin(): void {
    this.dioCount++;
  }
  /** inode_dio_end(): the last one wakes whoever waits in dioWait(). */
  dioEnd(): void {
    if (this.dioCount <= 0) throw new Error(`inode ${this.ino}: dio count would go below 0`);
    this.dioCount--;
    if (this.dioCount === 0 && this.dioWaiters.length > 0) for (const wake of this.dioWaiters.splice(0)) wake();
  }
  /** inode_dio_wait(): resolves when no direct IO is in flight. */
  dioWait(): Promise<void> {
    if (this.dioCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.dioWaiters.push(resolve));
  }
}

function checkBlockSize(disk: Disk, blockSize: unknown): number {
  if (blockSize !== 1024 && blockSize !== 2048 && blockSize !== 4096) {
    throw fail("EINVAL", "mkfs", `blockSize ${String(blockSize)} must be 1024, 2048 or 4096`);
  }
  if (blockSize < disk.limits.logicalBlockSize) {
    throw fail("EINVAL", "mkfs", `blockSize ${blockSize} is smaller than the disk's ${disk.limits.logicalBlockSize}-byte logical block`);
  }
  return blockSize;
}

/** Block-granular IO on the disk for the filesystem, through bounce buffers in the arena. */
/** A metadata commit's snapshot (Filesystem.commitPlan()). */
interface CommitPlan {
  version: number;
  frees: [number, number][];
  generation: number;
  blob: Uint8Array;
  blobAt: number;
  superblock: Uint8Array;
  superAt: number;
}

/** A cache flush (REQ_PREFLUSH with no data); never written to. */
const FLUSH_BIO: Bio = Object.freeze({ op: "flush", sector: 0, segments: [] });

class BlockIo {
  constructor(
    private readonly disk: Disk,
    private readonly evict: () => boolean,
    /** True once the filesystem is dead (the power was cut since mount): nothing more may reach
     *  the device on its behalf — the device itself comes back on after a cut. */
    private readonly dead: () => boolean = () => false,
  ) {}

  private bounce(bytes: number): Uint8Array {
    for (;;) {
      try {
        return this.disk.alloc(bytes);
      } catch (error) {
        if (!(error instanceof DioError) || error.code !== "ENOMEM" || !this.evict()) throw error;
      }
    }
  }

  async submit(bio: Bio, syscall: string): Promise<void> {
    this.beforeIo(syscall);
    this.afterIo(await this.disk.queue.submitBioWait(bio), bio, syscall);
  }

  /** submit() for a synchronous caller: the bio is waited for by polling the device. */
  submitPolled(bio: Bio, syscall: string): void {
    this.beforeIo(syscall);
    this.afterIo(this.disk.queue.submitBioPolled(bio, syscall), bio, syscall);
  }

  private beforeIo(syscall: string): void {
    if (this.dead()) throw fail("EIO", syscall, "the disk lost power since this filesystem was mounted");
  }

  private afterIo(status: number, bio: Bio, syscall: string): void {
    if (this.dead()) throw fail("EIO", syscall, "the disk lost power while this filesystem's IO was in flight");
    if (status !== 0) throw DioError.fromErrno(status, syscall, `${bio.op} at sector ${bio.sector} failed with errno ${-status}`);
  }

  /** Writes `data` (a multiple of the logical block) at byte `offset` of the disk. */
  async write(offset: number, data: Uint8Array, syscall: string, flags: BioFlag[] = []): Promise<void> {
    const chunk = this.bounce(Math.min(IO_CHUNK_BYTES, data.length));
    try {
      for (let at = 0; at < data.length; at += chunk.length) await this.submit(this.writeChunk(chunk, offset, data, at, flags), syscall);
    } finally {
      this.disk.free(chunk);
    }
  }

  /** write() for a synchronous caller. */
  writePolled(offset: number, data: Uint8Array, syscall: string, flags: BioFlag[] = []): void {
    const chunk = this.bounce(Math.min(IO_CHUNK_BYTES, data.length));
    try {
      for (let at = 0; at < data.length; at += chunk.length) this.submitPolled(this.writeChunk(chunk, offset, data, at, flags), syscall);
    } finally {
      this.disk.free(chunk);
    }
  }

  /** The bio that writes `data` from `at` on through `chunk` (the flags go on the last one). */
  private writeChunk(chunk: Uint8Array, offset: number, data: Uint8Array, at: number, flags: BioFlag[]): Bio {
    const length = Math.min(chunk.length, data.length - at);
    chunk.set(data.subarray(at, at + length));
    const last = at + length >= data.length;
    return { op: "write", sector: (offset + at) / SECTOR_BYTES, segments: [{ buf: chunk, length }], flags: last ? flags : [] };
  }

  /** Reads `length` bytes (a multiple of the logical block) at byte `offset` of the disk. */
  async read(offset: number, length: number, syscall: string): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    const chunk = this.bounce(Math.min(IO_CHUNK_BYTES, Math.max(length, SECTOR_BYTES)));
    try {
      for (let at = 0; at < length; at += chunk.length) {
        const part = Math.min(chunk.length, length - at);
        await this.submit({ op: "read", sector: (offset + at) / SECTOR_BYTES, segments: [{ buf: chunk, length: part }] }, syscall);
        out.set(chunk.subarray(0, part), at);
      }
    } finally {
      this.disk.free(chunk);
    }
    return out;
  }

  async flush(syscall: string): Promise<void> {
    this.beforeIo(syscall);
    this.afterIo(await this.disk.queue.flushWait(), FLUSH_BIO, syscall);
  }

  /** flush() for a synchronous caller. */
  flushPolled(syscall: string): void {
    this.submitPolled(FLUSH_BIO, syscall);
  }
}

/** A superblock slot as lbs-sized bytes (the superblock, then zeros). */
function slotBytes(disk: Disk, sb: Uint8Array | null): Uint8Array {
  const bytes = new Uint8Array(disk.limits.logicalBlockSize);
  if (sb !== null) bytes.set(sb);
  return bytes;
}

/** Writes an empty filesystem on `disk` (API.md mkfs). */
export async function mkfs(disk: Disk, opts: MkfsOptions = {}): Promise<void> {
  if (disk.isClosed) throw fail("EIO", "mkfs", "the disk is closed");
  if (disk.mounted !== undefined) throw fail("EBUSY", "mkfs", "the disk has a mounted filesystem; unmount it first");
  const blockSize = checkBlockSize(disk, opts.blockSize ?? 4096);
  const inodes = opts.inodes ?? 1024;
  if (!Number.isInteger(inodes) || inodes < 1 || inodes > FS_INODES_MAX - 1) {
    throw fail("EINVAL", "mkfs", `inodes ${String(inodes)} must be an integer in 1..${FS_INODES_MAX - 1}`);
  }
  const geometry = planGeometry(disk.size, blockSize, inodes);
  if (geometry === null) throw fail("EINVAL", "mkfs", `the disk's ${disk.size} bytes are too small for a filesystem of ${inodes} inodes with ${blockSize}-byte blocks`);
  const io = new BlockIo(disk, () => false);
  const blob = encodeMeta(1, []);
  const padded = new Uint8Array(Math.ceil(blob.length / blockSize) * blockSize);
  padded.set(blob);
  const sb = encodeSuperblock({
    version: FORMAT_VERSION, blockSize, blockCount: geometry.blockCount, inodeCount: inodes,
    metaAreaBlocks: geometry.metaAreaBlocks, slot: 1, generation: 1, metaBytes: blob.length, metaChecksum: crc32c(blob),
  });
  await io.write(SUPER_SLOT_OFFSETS[0], slotBytes(disk, null), "mkfs");
  await io.write(geometry.metaAreaStart[1] * blockSize, padded, "mkfs");
  await io.write(SUPER_SLOT_OFFSETS[1], slotBytes(disk, sb), "mkfs", ["PREFLUSH", "FUA"]);
}

/** Reads and checks the filesystem on `disk` (API.md mount). Nothing is written. */
export async function mount(disk: Disk, opts: MountOptions = {}): Promise<Filesystem> {
  if (disk.isClosed) throw fail("EIO", "mount", "the disk is closed");
  if (disk.mounted !== undefined) throw fail("EBUSY", "mount", "the disk already has a mounted filesystem");
  const semantics = opts.semantics ?? "seed";
  if (!SEMANTICS.includes(semantics)) throw fail("EINVAL", "mount", `semantics ${String(semantics)} must be one of ${SEMANTICS.join(", ")}`);
  if (opts.sync !== undefined && typeof opts.sync !== "boolean") throw fail("EINVAL", "mount", `sync ${String(opts.sync)} must be a boolean`);
  const io = new BlockIo(disk, () => false);
  const lbs = disk.limits.logicalBlockSize;
  const slots = await Promise.all(SUPER_SLOT_OFFSETS.map(async (offset) => {
    if (offset + lbs > disk.size) return { kind: "absent" } as const;
    return decodeSuperblock((await io.read(offset, lbs, "mount")).subarray(0, SUPER_BYTES));
  }));
  const newer = slots.find((slot) => slot.kind === "newer");
  if (newer !== undefined && newer.kind === "newer") {
    throw fail("EINVAL", "mount", `the filesystem's format version ${newer.version} is newer than this dioemu supports (${FORMAT_VERSION})`);
  }
  if (slots.some((slot) => slot.kind === "bad-checksum")) throw fail("EUCLEAN", "mount", "a superblock's checksum does not match: the image is corrupt");
  const valid = slots.flatMap((slot, i) => (slot.kind === "ok" && slot.sb.slot === i ? [slot.sb] : []));
  if (valid.length === 0) {
    if (slots.some((slot) => slot.kind === "ok")) throw fail("EUCLEAN", "mount", "a superblock sits in the wrong slot: the image is corrupt");
    throw fail("EINVAL", "mount", "not a dioemu filesystem (no superblock magic found)");
  }
  const sb = valid.reduce((a, b) => (b.generation > a.generation ? b : a));
  const geometry = planGeometry(disk.size, sb.blockSize, sb.inodeCount);
  if (sb.blockSize !== 1024 && sb.blockSize !== 2048 && sb.blockSize !== 4096 || sb.blockSize < lbs || geometry === null ||
      geometry.blockCount !== sb.blockCount || geometry.metaAreaBlocks !== sb.metaAreaBlocks || sb.inodeCount > FS_INODES_MAX - 1) {
    throw fail("EUCLEAN", "mount", `the superblock's geometry (${sb.blockCount} blocks of ${sb.blockSize} bytes, ${sb.inodeCount} inodes) does not match this ${disk.size}-byte disk`);
  }
  if (sb.metaBytes > sb.metaAreaBlocks * sb.blockSize) throw fail("EUCLEAN", "mount", `metadata length ${sb.metaBytes} exceeds its area`);
  const readBytes = Math.ceil(sb.metaBytes / lbs) * lbs;
  const blob = (await io.read(geometry.metaAreaStart[sb.slot] * sb.blockSize, readBytes, "mount")).subarray(0, sb.metaBytes);
  if (crc32c(blob) !== sb.metaChecksum) throw fail("EUCLEAN", "mount", `the metadata checksum of generation ${sb.generation} does not match: the image is corrupt`);
  let decoded: { generation: number; inodes: InodeRecord[] };
  try {
    decoded = decodeMeta(blob);
  } catch (error) {
    throw fail("EUCLEAN", "mount", `the metadata is corrupt: ${(error as Error).message}`);
  }
  if (decoded.generation !== sb.generation) throw fail("EUCLEAN", "mount", `the metadata is generation ${decoded.generation}, its superblock says ${sb.generation}`);
  const problems = checkMeta(geometry, decoded.inodes);
  if (problems.length > 0) throw fail("EUCLEAN", "mount", `the metadata is inconsistent: ${problems[0]}`);
  if (opts.legacyXfs !== undefined && typeof opts.legacyXfs !== "boolean") throw fail("EINVAL", "mount", `legacyXfs ${String(opts.legacyXfs)} must be a boolean`);
  if (opts.legacyXfs === true && semantics !== "legacy") throw fail("EINVAL", "mount", `legacyXfs models a 3.7 path and needs semantics "legacy", not ${semantics}`);
  const fs = new Filesystem(disk, geometry, sb, semantics, opts.sync === true);
  fs.legacyXfs = opts.legacyXfs === true;
  if (opts.clock !== undefined) {
    if (typeof opts.clock !== "function") throw fail("EINVAL", "mount", "clock must be a function returning milliseconds");
    fs.clock = timesClock(opts.clock);
  }
  fs.load(decoded.inodes);
  disk.mounted = fs;
  return fs;
}

/** A mounted filesystem (API.md). */
export class Filesystem {
  readonly blockSize: number;
  readonly semantics: Semantics;
  /** Mount option `sync`: every inode is IS_SYNC. */
  readonly syncMount: boolean;
  /** @internal */
  readonly disk: Disk;
  /** @internal */
  readonly geometry: Geometry;
  /** @internal */
  readonly pages: PageCache;
  private readonly io: BlockIo;
  private readonly inodes = new Map<number, Inode>();
  private readonly names = new Map<string, Inode>();
  /** Disk runs no longer referenced in memory, still referenced by the durable metadata. */
  private pendingFree: [number, number][] = [];
  private generation: number;
  private metaVersion = 0;
  /** The metaVersion that the newest durable commit captured. */
  private durableVersion = 0;
  private readonly commitLock = new Mutex();
  private reservedBlocks = 0;
  private dataWritesInFlight = 0;
  private dataWriteWaiters: (() => void)[] = [];
  private state: "mounted" | "unmounted" = "mounted";
  /** Set when the filesystem can no longer trust its own state on disk (a failed superblock
   *  write, a failed writeback): every call fails with EIO from then on, as a journal abort does. */
  private shutdownReason: string | undefined;
  private readonly crashCountAtMount: number;
  private readonly handles = new Set<{ closeQuietly(): void }>();
  private readonly ctrl: DataView;
  private readonly memory: WebAssembly.Memory;
  /** The superblock's id (s_id), named in its "dio/<id>" queue. */
  readonly id = `dioemu${++mountSerial}`;
  /** @internal See MountOptions.clock: milliseconds, or NaN when the mount's clock failed. */
  clock: () => number = coarseClock;

  /** @internal mtime and ctime to now; unchanged when the mount's clock failed. */
  stampTimes(inode: Inode): void {
    const now = this.clock();
    if (!Number.isNaN(now)) inode.mtimeMs = inode.ctimeMs = now;
  }
  /** @internal See MountOptions.legacyXfs. */
  legacyXfs = false;
  /** @internal The direct-IO completion queue: the seed's s_dio_flush_wq ("dio-sync", max_active
   *  1) or 3.11+'s s_dio_done_wq ("dio/<id>"); null until first needed, and after unmount. */
  dioQueue: WorkQueue | null = null;
  /** @internal */
  readonly dioStats: DioStats = { queuesCreated: 0, queuesDiscarded: 0, workAllocated: 0, workFreed: 0, workQueued: 0, syncs: 0 };
  /** @internal Test hook: the next `failQueueAlloc` queue allocations (and `failWorkAlloc` record
   *  allocations) fail with ENOMEM. */
  failQueueAlloc = 0;
  /** @internal */
  failWorkAlloc = 0;
  /** @internal Records writes and syncs for the durability oracle (crashTest). */
  recorder: DurabilityRecorder | undefined;
  /** @internal Observes each step of direct-IO completion (tests, tracing). */
  onDioStep: ((step: DioStep) => void) | undefined;

  /** @internal Use mount(). */
  constructor(disk: Disk, geometry: Geometry, sb: Superblock, semantics: Semantics, syncMount: boolean) {
    this.disk = disk;
    this.geometry = geometry;
    this.blockSize = geometry.blockSize;
    this.semantics = semantics;
    this.syncMount = syncMount;
    this.generation = sb.generation;
    this.crashCountAtMount = disk.crashCount;
    this.memory = disk.memory;
    this.ctrl = new DataView(disk.memory.buffer, LAYOUT_BASE, 4096);
    const arenaPages = Math.floor(disk.plan.arenaBytes / PAGE_BYTES);
    const capacity = Math.max(16, Math.floor(arenaPages / 2));
    this.pages = new PageCache(disk, capacity, Math.max(8, Math.floor(capacity / 2)));
    this.io = new BlockIo(disk, () => this.pages.releaseSpare() || this.pages.evictClean(16), () => this.disk.crashCount !== this.crashCountAtMount);
  }

  // ---- state ---------------------------------------------------------------------------------

  /** @internal Throws EIO when the filesystem was unmounted or the disk lost power since mount. */
  checkAlive(syscall: string): void {
    if (this.state === "unmounted") throw fail("EIO", syscall, "the filesystem is unmounted");
    if (this.shutdownReason !== undefined) throw fail("EIO", syscall, `the filesystem shut down: ${this.shutdownReason}; unmount is refused, mount it again after a power cycle`);
    if (this.disk.crashCount !== this.crashCountAtMount) throw fail("EIO", syscall, "the disk lost power since this filesystem was mounted; mount it again");
    if (this.disk.isClosed) throw fail("EIO", syscall, "the disk is closed");
  }

  /** @internal The disk lost power: the page cache goes (its buffers back to the arena). Every
   *  later call fails with EIO (checkAlive), and bios in flight fail without touching memory. */
  /** @internal The disk is closing under a mounted filesystem: its queue's thread stops now. */
  abandon(): void {
    const queue = this.dioQueue;
    this.dioQueue = null;
    queue?.abandon();
  }

  powerCut(): void {
    this.pages.dropAll();
    // Its completion queue ends with it: the items still running fail with EIO and it stops.
    const queue = this.dioQueue;
    this.dioQueue = null;
    if (queue !== null) void queue.destroy();
  }

  /** @internal Loads the durable metadata into the core's mapping state. */
  load(records: readonly InodeRecord[]): void {
    this.ctrl.setUint32(CTRL.FS_BLOCK_COUNT, this.geometry.blockCount, true);
    const core = this.disk.core;
    if (core.fs_attach() !== 0) throw new Error("dioemu: the core refused the filesystem regions");
    core.fs_reset(this.geometry.firstDataBlock);
    for (const record of records) {
      if (core.fs_inode_init(record.ino) !== 0) throw fail("EUCLEAN", "mount", `inode ${record.ino} cannot be loaded`);
      for (let k = 0; k < record.extents.length; k += 3) {
        const status = core.fs_load_extent(record.ino, record.extents[k], record.extents[k + 1], record.extents[k + 2]);
        if (status !== 0) throw fail("EUCLEAN", "mount", `inode ${record.ino}: extent ${k / 3} is inconsistent (${status})`);
      }
      const inode = new Inode(record.ino, record.size, record.mtimeMs, record.ctimeMs, record.name);
      this.inodes.set(record.ino, inode);
      this.names.set(record.name, inode);
    }
  }

  /** @internal Marks an inode's size or allocation changed (datasync must persist it). */
  touchData(inode: Inode): void {
    inode.dataVersion = inode.allVersion = ++this.metaVersion;
  }
  /** @internal Marks an inode's other metadata changed (a full sync persists it). */
  touchTimes(inode: Inode): void {
    inode.allVersion = ++this.metaVersion;
  }

  /** @internal Whether the inode has size or allocation changes not yet committed: the metadata a
   *  datasync must persist (iomap's IOMAP_F_DIRTY). */
  metadataDirty(inode: Inode): boolean {
    return this.needsCommit(inode, true);
  }

  /** Whether a sync of `inode` must commit metadata: what datasync needs (size, allocation) or,
   *  for a full sync, any of its metadata, changed since the newest durable commit. */
  needsCommit(inode: Inode, datasync: boolean): boolean {
    return (datasync ? inode.dataVersion : inode.allVersion) > this.durableVersion;
  }

  // ---- direct-IO completion: the queue, the sync-work record, generic_write_sync ---------------

  /** @internal Reports a completion step to onDioStep. */
  dioStep(step: DioStep["step"], inode?: Inode, offset?: number, res?: number): void {
    this.onDioStep?.({ step, ino: inode?.ino, offset, res, time: this.disk.device.now });
  }

  /**
   * @internal The superblock's completion queue, created on first use and installed exactly once:
   * two first users may both allocate one (allocation is asynchronous); the first to install wins
   * and the other destroys its copy, and both go on with the winner (spec 3.1a; 4:
   * sb_init_dio_done_wq). ENOMEM (a test hook) fails the caller before any IO.
   */
  async initDioQueue(syscall: string): Promise<WorkQueue> {
    if (this.dioQueue !== null) return this.dioQueue;
    this.checkQueueAlloc(syscall);
    // alloc_workqueue() may sleep: another first user may allocate and install meanwhile.
    await Promise.resolve();
    const queue = this.newDioQueue();
    if (this.dioQueue === null && this.state === "mounted" && this.disk.crashCount === this.crashCountAtMount && !this.disk.isClosed) {
      this.installDioQueue(queue);
      return queue;
    }
    this.dioStats.queuesDiscarded++;
    await queue.destroy();
    this.dioStep("queue_discarded");
    this.checkAlive(syscall);
    return this.dioQueue!;
  }

  /** @internal initDioQueue() for a synchronous caller: the queue is made and installed at once
   *  (with no await between, no other first user can race it). */
  initDioQueueNow(syscall: string): WorkQueue {
    if (this.dioQueue !== null) return this.dioQueue;
    this.checkQueueAlloc(syscall);
    const queue = this.newDioQueue();
    this.installDioQueue(queue);
    return queue;
  }

  /** ENOMEM from the test hook, before the queue is made. */
  private checkQueueAlloc(syscall: string): void {
    if (this.failQueueAlloc > 0) {
      this.failQueueAlloc--;
      throw fail("ENOMEM", syscall, "the direct-IO completion queue could not be allocated");
    }
  }

  /** The superblock's completion queue, made (not yet installed). */
  private newDioQueue(): WorkQueue {
    const seed = this.semantics === "seed";
    const queue = WorkQueue.createNow(this.disk, seed ? "dio-sync" : `dio/${this.id}`, seed ? 1 : 256, this.disk.executor);
    this.dioStats.queuesCreated++;
    this.dioStep("queue_created");
    return queue;
  }

  private installDioQueue(queue: WorkQueue): void {
    this.dioQueue = queue;
    this.dioStep("queue_installed");
  }

  /** @internal The seed's kmalloc of a sync-work record (ENOMEM from a test hook). */
  allocSyncWork(inode: Inode, offset: number, syscall: string): SyncWork {
    if (this.failWorkAlloc > 0) {
      this.failWorkAlloc--;
      throw fail("ENOMEM", syscall, "the sync-work record could not be allocated");
    }
    this.dioStats.workAllocated++;
    this.dioStep("work_alloc", inode, offset);
    return { iocb: null, offset, len: 0, ret: 0 };
  }

  /** @internal Frees a sync-work record. (The seed's worker never freed its record, a leak the
   *  emulator does not reproduce: DESIGN.md.) */
  freeSyncWork(work: SyncWork, inode: Inode): void {
    this.dioStats.workFreed++;
    this.dioStep("work_free", inode, work.offset);
  }

  /**
   * @internal generic_write_sync() for a direct write of `count` bytes at `offset`, datasync or
   * full (spec 6.1): writes back dirty pages in the range, commits the metadata the sync needs, and
   * ends with a cache flush (on `queue`'s executor when given). An empty or inverted range (the
   * legacy caller's count of -EIOCBQUEUED) writes back nothing, but the commit or flush still goes
   * out. A worker never waits for the inode lock (a truncate holding it may be waiting for this
   * very IO): it writes back dirty pages only when the lock is free.
   * Returns 0 or -errno.
   */
  async syncRange(inode: Inode, offset: number, count: number, datasync: boolean, syscall: string, queue?: WorkQueue, waitLock = false): Promise<number> {
    this.dioStats.syncs++;
    try {
      this.checkAlive(syscall);
      if (count > 0) {
        // The caller's own sync (waitLock) holds no lock and may wait for it; a worker may not.
        const unlock = waitLock ? await inode.lock.lock() : inode.lock.tryLock();
        if (unlock !== null) {
          try {
            await this.writebackInode(inode, syscall, offset, count);
          } finally {
            unlock();
          }
        }
      }
      if (this.needsCommit(inode, datasync)) {
        await this.commit(syscall);
        return 0;
      }
      this.checkAlive(syscall);
      if (queue !== undefined) {
        const status = await queue.flush();
        // A flush that ended across a power cut promises nothing about a filesystem now dead.
        this.checkAlive(syscall);
        return status;
      }
      await this.io.flush(syscall);
      return 0;
    } catch (error) {
      return error instanceof DioError ? error.errno : -5;
    }
  }

  /**
   * @internal syncRange() for a synchronous caller: the commit or the cache flush, waited for by
   * polling the device. The caller has made sure beforehand that nothing in it must wait for an
   * asynchronous call: no dirty page of the inode, the commit lock free (EAGAIN otherwise, before
   * any IO). Returns 0 or -errno.
   */
  syncRangePolled(inode: Inode, datasync: boolean, syscall: string): number {
    this.dioStats.syncs++;
    try {
      this.checkAlive(syscall);
      if (this.pages.hasDirty(inode.ino)) throw new Error("dioemu: a polled sync found dirty pages it cannot write back");
      if (this.needsCommit(inode, datasync)) this.commitPolled(syscall);
      else this.io.flushPolled(syscall);
      return 0;
    } catch (error) {
      if (!(error instanceof DioError)) throw error; // a broken invariant is no IO error
      return error.errno;
    }
  }

  /** @internal Whether generic_write_sync() over [offset, offset + count) would be only a cache
   *  flush: no dirty page in the range, no metadata the sync must commit. */
  syncIsFlushOnly(inode: Inode, offset: number, count: number, datasync: boolean): boolean {
    if (this.needsCommit(inode, datasync)) return false;
    if (!this.pages.hasDirty(inode.ino)) return true;
    const first = Math.floor(offset / PAGE_BYTES);
    const end = Math.ceil((offset + Math.max(0, count)) / PAGE_BYTES);
    return !this.pages.pagesOf(inode.ino, true).some((page) => page.index >= first && page.index < end);
  }

  /** @internal Is the inode IS_SYNC (mount -o sync)? */
  isSyncInode(_inode: Inode): boolean {
    return this.syncMount;
  }

  /** @internal */
  registerHandle(handle: { closeQuietly(): void }): void {
    this.handles.add(handle);
  }
  /** @internal */
  unregisterHandle(handle: { closeQuietly(): void }): void {
    this.handles.delete(handle);
  }

  // ---- names -------------------------------------------------------------------------------------

  /** @internal A path's name in the flat namespace; throws EINVAL/ENAMETOOLONG/ENOENT-style errors. */
  nameOf(path: unknown, syscall: string): string {
    if (typeof path !== "string") throw fail("EINVAL", syscall, `path ${String(path)} must be a string`);
    const name = path.startsWith("/") ? path.slice(1) : path;
    if (name.length === 0) throw fail("EISDIR", syscall, `path "${path}" names the root directory`);
    if (name.includes("/")) throw fail("ENOENT", syscall, `path "${path}": the namespace is flat, there are no subdirectories`);
    if (name === "." || name === "..") throw fail("EINVAL", syscall, `path "${path}" is not a file name`);
    if (new TextEncoder().encode(name).length > NAME_BYTES_MAX) throw fail("ENAMETOOLONG", syscall, `name "${name.slice(0, 32)}..." is longer than ${NAME_BYTES_MAX} bytes`);
    return name;
  }

  /** @internal The inode named `name`, or undefined. */
  lookup(name: string): Inode | undefined {
    return this.names.get(name);
  }

  /** @internal Creates an empty file `name`; ENOSPC when no inode is free. */
  create(name: string, syscall: string): Inode {
    let ino = 1;
    while (ino <= this.geometry.inodeCount && this.inodes.has(ino)) ino++;
    if (ino > this.geometry.inodeCount) throw fail("ENOSPC", syscall, `no free inode: all ${this.geometry.inodeCount} are in use`);
    if (this.disk.core.fs_inode_init(ino) !== 0) throw new Error(`dioemu: core inode slot ${ino} is not free`);
    const reading = this.clock();
    // A new file's times: the clock's, or 0 when the mount's clock fails (it has no earlier ones).
    const now = Number.isNaN(reading) ? 0 : reading;
    const inode = new Inode(ino, 0, now, now, name);
    this.inodes.set(ino, inode);
    this.names.set(name, inode);
    this.touchData(inode);
    return inode;
  }

  /** Opens (and with O_CREAT creates) a file; flags as open(2). `mode` is accepted and ignored. */
  async open(path: string, flags: number, mode = 0o666): Promise<FileHandle> {
    this.checkAlive("open");
    if (typeof flags !== "number" || !Number.isInteger(flags) || flags < 0) throw fail("EINVAL", "open", `flags ${String(flags)} must be a non-negative integer`);
    if (typeof mode !== "number") throw fail("EINVAL", "open", `mode ${String(mode)} must be a number`);
    if ((flags & O_ACCMODE) === O_ACCMODE) throw fail("EINVAL", "open", `flags ${flags.toString(8)} (octal) ask for access mode 3, which is not O_RDONLY, O_WRONLY or O_RDWR`);
    const name = this.nameOf(path, "open");
    let inode = this.names.get(name);
    if (inode !== undefined && (flags & O_CREAT) !== 0 && (flags & O_EXCL) !== 0) throw fail("EEXIST", "open", `"${name}" exists and O_CREAT|O_EXCL was given`);
    if (inode === undefined) {
      if ((flags & O_CREAT) === 0) throw fail("ENOENT", "open", `no file named "${name}" (and no O_CREAT)`);
      inode = this.create(name, "open");
    } else if ((flags & O_TRUNC) !== 0 && inode.size > 0) {
      await this.truncateInode(inode, 0, "open");
    }
    return new FileHandle(this, inode, flags);
  }

  /** @internal truncate(): waits for direct IO in flight, then shrinks or grows (a hole) to `size`. */
  async truncateInode(inode: Inode, size: number, syscall: string): Promise<void> {
    if (size > FILE_BYTES_MAX) throw fail("EFBIG", syscall, `length ${size} passes the ${FILE_BYTES_MAX}-byte file size limit`);
    await inode.lock.run(async () => {
      this.checkAlive(syscall);
      await inode.dioWait();
      if (size < inode.size) {
        this.dropPagesFrom(inode, Math.ceil(size / PAGE_BYTES));
        const tail = size % PAGE_BYTES;
        if (tail !== 0) {
          // The part of the last page past the new end must read as zeros if the file grows again.
          const page = await this.getPage(inode, Math.floor(size / PAGE_BYTES), true, syscall);
          this.unpin(page);
          this.checkAlive(syscall);
          page.buf.fill(0, tail);
          const perPage = PAGE_BYTES / this.blockSize;
          const keepBlocks = Math.ceil(tail / this.blockSize);
          const cut = ((1 << perPage) - 1) & ~((1 << keepBlocks) - 1);
          this.reservedBlocks -= bitCount(page.reservedMask & cut);
          page.reservedMask &= ~cut;
          this.pages.markClean(page, cut);
          // The block holding the new end has its tail zeroed: write it back if it is on disk.
          const endBit = 1 << (keepBlocks - 1);
          if ((this.mappedMask(inode, page.index) & endBit) !== 0) this.pages.markDirty(page, endBit);
        }
        this.truncateBlocks(inode, Math.ceil(size / this.blockSize));
      } else if (size > inode.size) {
        await this.zeroEofTail(inode, syscall);
      }
      this.truncated(inode, size);
    });
  }

  /**
   * @internal truncateInode() for a synchronous caller (FileHandle.truncateSync()): the same
   * steps where they need no IO and no wait, EAGAIN before anything changes otherwise: the inode
   * lock held or direct IO in flight (a promise call's), a new size inside a page (its tail is
   * zeroed through the page cache), or growing a file whose size is inside a block (the same).
   */
  truncateInodeNow(inode: Inode, size: number, syscall: string): void {
    if (size > FILE_BYTES_MAX) throw fail("EFBIG", syscall, `length ${size} passes the ${FILE_BYTES_MAX}-byte file size limit`);
    this.checkAlive(syscall);
    const wouldBlock = (why: string): DioError => fail("EAGAIN", syscall, `${why}; a synchronous call cannot wait for that (use truncate())`);
    if (!inode.lock.tryAcquire()) throw wouldBlock(`inode ${inode.ino} is locked by an asynchronous call in flight`);
    try {
      if (inode.dioCount > 0) throw wouldBlock(`inode ${inode.ino} has direct IO in flight`);
      if (size < inode.size) {
        if (size % PAGE_BYTES !== 0) throw wouldBlock(`the new size ${size} ends inside a page, whose tail is zeroed through the page cache`);
        this.dropPagesFrom(inode, size / PAGE_BYTES);
        this.truncateBlocks(inode, Math.ceil(size / this.blockSize));
      } else if (size > inode.size && inode.size % this.blockSize !== 0) {
        throw wouldBlock(`inode ${inode.ino} ends inside a block (size ${inode.size}), whose tail is zeroed through the page cache first`);
      }
      this.truncated(inode, size);
    } finally {
      inode.lock.release();
    }
  }

  /** Drops the cached pages of `inode` from page `first` on (their reservations go back). */
  private dropPagesFrom(inode: Inode, first: number): void {
    for (const page of this.pages.pagesOf(inode.ino)) {
      if (page.index >= first) this.reservedBlocks -= this.pages.drop(page);
    }
  }

  /** The end of a truncate: the new size, the oracle told, the times. */
  private truncated(inode: Inode, size: number): void {
    if (size !== inode.size) {
      inode.size = size;
      this.touchData(inode);
    }
    if (inode.name !== null) this.recorder?.truncate?.(inode.name, size);
    this.stampTimes(inode);
    this.touchTimes(inode);
  }

  async unlink(path: string): Promise<void> {
    this.checkAlive("unlink");
    const name = this.nameOf(path, "unlink");
    const inode = this.names.get(name);
    if (inode === undefined) throw fail("ENOENT", "unlink", `no file named "${name}"`);
    this.names.delete(name);
    inode.name = null;
    ++this.metaVersion;
    this.recorder?.unlink?.(name);
    if (inode.openCount === 0) await this.evict(inode);
  }

  /** @internal The last reference to an unlinked inode is gone: its blocks and slot go back. */
  async evict(inode: Inode): Promise<void> {
    const unlock = await inode.lock.lock();
    try {
      await inode.dioWait();
      for (const page of this.pages.pagesOf(inode.ino)) this.reservedBlocks -= this.pages.drop(page);
      this.truncateBlocks(inode, 0);
      this.disk.core.fs_inode_release(inode.ino);
      this.inodes.delete(inode.ino);
    } finally {
      unlock();
    }
  }

  async stat(path: string): Promise<Stats> {
    this.checkAlive("stat");
    const name = this.nameOf(path, "stat");
    const inode = this.names.get(name);
    if (inode === undefined) throw fail("ENOENT", "stat", `no file named "${name}"`);
    return this.statInode(inode);
  }

  /** @internal */
  statInode(inode: Inode): Stats {
    const reserved = this.pages.pagesOf(inode.ino).reduce((sum, page) => sum + bitCount(page.reservedMask), 0);
    const blocks = (this.disk.core.fs_mapped_blocks(inode.ino) + reserved) * (this.blockSize / SECTOR_BYTES);
    return { ino: inode.ino, size: inode.size, blocks, blksize: this.blockSize, mtimeMs: inode.mtimeMs, ctimeMs: inode.ctimeMs };
  }

  async readdir(path = "/"): Promise<string[]> {
    this.checkAlive("readdir");
    if (path !== "/" && path !== "" && path !== ".") throw fail("ENOTDIR", "readdir", `path "${path}": the only directory is "/"`);
    return [...this.names.keys()].sort();
  }

  // ---- mapping -------------------------------------------------------------------------------------

  /**
   * @internal get_block (spec 2.7) through the core, synchronously: maps file blocks from
   * `fileBlock`, up to `maxBlocks`, allocating with `create`. Throws ENOSPC when no block is free.
   */
  mapBlocks(inode: Inode, fileBlock: number, maxBlocks: number, create: boolean, syscall: string): { diskBlock: number; count: number; flags: number } {
    const core = this.disk.core;
    const status = core.fs_get_block(inode.ino, fileBlock, maxBlocks, create ? 1 : 0);
    if (status === -28) throw fail("ENOSPC", syscall, `no free block to map block ${fileBlock} of inode ${inode.ino}`);
    if (status !== 0) throw DioError.fromErrno(status, syscall, `mapping block ${fileBlock} of inode ${inode.ino} failed`);
    const flags = core.fs_map_flags();
    if (create && (flags & 2) !== 0) this.touchData(inode);
    return { diskBlock: core.fs_map_disk_block() >>> 0, count: core.fs_map_block_count() >>> 0, flags };
  }

  /** @internal Whether a block of [from, end) is a hole (looked up, never allocated). */
  rangeHasHole(inode: Inode, from: number, end: number): boolean {
    if (inode.holeFreeVersion === inode.dataVersion && end <= inode.holeFreeEnd) return false;
    const core = this.disk.core;
    // The whole file is looked at once per change of its size or allocation (every change of
    // the extent map bumps dataVersion: touchData()); most files have no hole, and later
    // calls then need no lookup. A file found with a hole is not looked at whole again until
    // it changes: only the range is.
    if (inode.holeyVersion !== inode.dataVersion) {
      if (core.fs_range_mapped(inode.ino, 0, Math.ceil(inode.size / this.blockSize)) === 1) {
        inode.holeFreeVersion = inode.dataVersion;
        inode.holeFreeEnd = inode.size;
        if (end <= inode.size) return false;
      } else {
        inode.holeyVersion = inode.dataVersion;
      }
    }
    return core.fs_range_mapped(inode.ino, Math.floor(from / this.blockSize), Math.ceil(end / this.blockSize)) !== 1;
  }

  /** @internal Whether an asynchronous call holds the commit lock (a synchronous one needing a
   *  commit could not wait for it). */
  get commitBusy(): boolean {
    return this.commitLock.locked;
  }

  /** @internal Unmaps file blocks from `fromBlock` on; the freed runs wait for the next commit. */
  truncateBlocks(inode: Inode, fromBlock: number): void {
    const core = this.disk.core;
    const scratch = new Uint32Array(this.memory.buffer, this.disk.plan.fsScratchBase, this.disk.plan.fsScratchCapacity * 3);
    for (;;) {
      const runs = core.fs_truncate(inode.ino, fromBlock);
      if (runs < 0) throw new Error(`dioemu: core truncate of inode ${inode.ino} failed (${runs})`);
      for (let i = 0; i < runs; i++) this.pendingFree.push([scratch[i * 3 + 1], scratch[i * 3 + 2]]);
      if (runs > 0) this.touchData(inode);
      if (runs < this.disk.plan.fsScratchCapacity) break;
    }
  }

  /** @internal Extents of an inode as [file, disk, length] triples (read from the core's pool). */
  extentsOf(ino: number): Uint32Array {
    const slot = new DataView(this.memory.buffer, this.disk.plan.fsInodeBase + ino * FS_INODE_SIZE, FS_INODE_SIZE);
    const start = slot.getUint32(0, true);
    const count = slot.getUint32(4, true);
    return new Uint32Array(this.memory.buffer.slice(this.disk.plan.fsExtentBase + start * FS_EXTENT_SIZE,
      this.disk.plan.fsExtentBase + (start + count) * FS_EXTENT_SIZE));
  }

  /** @internal Whether blocks freed since the last commit wait for one. */
  hasPendingFree(): boolean {
    return this.pendingFree.length > 0;
  }

  /** @internal On ENOSPC: commits when that frees blocks; true when a retry may succeed. */
  async reclaim(syscall: string): Promise<boolean> {
    if (this.pendingFree.length === 0) return false;
    await this.commit(syscall);
    return true;
  }

  /** @internal reclaim() for a synchronous caller (commitPolled()). */
  reclaimPolled(syscall: string): boolean {
    if (this.pendingFree.length === 0) return false;
    this.commitPolled(syscall);
    return true;
  }

  /** @internal Drops the clean cached pages over [from, from + length) (invalidate_inode_pages2_range). */
  invalidateRange(inode: Inode, from: number, length: number): void {
    if (length <= 0 || !this.pages.hasPages(inode.ino)) return;
    const first = Math.floor(from / PAGE_BYTES);
    const last = Math.floor((from + length - 1) / PAGE_BYTES);
    for (const page of this.pages.pagesOf(inode.ino)) {
      if (page.index >= first && page.index <= last && page.dirtyMask === 0 && page.busy === 0) this.pages.drop(page);
    }
  }

  /** Free blocks that a new reservation may use. */
  private availableBlocks(): number {
    return this.ctrl.getUint32(CTRL.FS_FREE_BLOCKS, true) - this.reservedBlocks;
  }

  /** @internal Reserves `blocks` for delayed allocation, committing to release freed blocks if needed. */
  async reserve(blocks: number, syscall: string): Promise<void> {
    if (blocks === 0) return;
    if (this.availableBlocks() < blocks && this.pendingFree.length > 0) await this.commit(syscall);
    if (this.availableBlocks() < blocks) {
      throw fail("ENOSPC", syscall, `no space: ${blocks} blocks needed, ${Math.max(0, this.availableBlocks())} free`);
    }
    this.reservedBlocks += blocks;
  }

  /** @internal Gives back reserved blocks. */
  unreserve(blocks: number): void {
    this.reservedBlocks -= blocks;
  }

  // ---- page IO -------------------------------------------------------------------------------------

  /** @internal Bit i set when block i of page `index` of `inode` is mapped on disk. */
  mappedMask(inode: Inode, index: number): number {
    const perPage = PAGE_BYTES / this.blockSize;
    const first = index * perPage;
    let mask = 0;
    let block = first;
    while (block < first + perPage) {
      const map = this.mapBlocks(inode, block, first + perPage - block, false, "map");
      if ((map.flags & MAP_MAPPED) !== 0) mask |= ((1 << map.count) - 1) << (block - first);
      block += map.count;
    }
    return mask;
  }

  /**
   * @internal Moves consecutive runs of `pages` of `inode` to or from the disk, block by block:
   * reads zero-fill holes; writes allocate and skip blocks past EOF. All mapping is done first,
   * synchronously, and the write bios are counted in flight before anything else can run, so a
   * commit never records an allocation whose data is not at least on its way (ordered data).
   * Bios cover disk-contiguous runs, up to 256 segments and 1 MiB each.
   */
  async pageIo(inode: Inode, pages: Page[], op: "read" | "write", syscall: string): Promise<void> {
    const perPage = PAGE_BYTES / this.blockSize;
    const fileBlocks = Math.ceil(inode.size / this.blockSize);
    const bios: Bio[] = [];
    // The blocks to move, in file order: every block of each page for a read; for a write, the
    // dirty blocks inside EOF.
    const blocks: number[] = [];
    const pageOfBlock = new Map<number, Page>();
    for (const page of pages) {
      for (let k = 0; k < perPage; k++) {
        const block = page.index * perPage + k;
        if (op === "write" && (((page.dirtyMask >> k) & 1) === 0 || block >= fileBlocks)) continue;
        blocks.push(block);
        pageOfBlock.set(block, page);
      }
    }
    let i = 0;
    while (i < blocks.length) {
      // A run of consecutive file blocks.
      let j = i;
      while (j + 1 < blocks.length && blocks[j + 1] === blocks[j] + 1) j++;
      let block = blocks[i];
      const endBlock = blocks[j] + 1;
      while (block < endBlock) {
        let map: { diskBlock: number; count: number; flags: number };
        try {
          map = this.mapBlocks(inode, block, endBlock - block, op === "write", syscall);
        } catch (error) {
          // Reservations make this unreachable for writes; if it happens, blocks mapped above
          // have no data yet and must never be committed.
          if (op === "write" && bios.length > 0) this.shutdownReason = `writeback of inode ${inode.ino} could not map block ${block}`;
          throw error;
        }
        if ((map.flags & MAP_MAPPED) === 0) {
          for (let b = block; b < block + map.count; b++) {
            const at = (b % perPage) * this.blockSize;
            pageOfBlock.get(b)!.buf.fill(0, at, at + this.blockSize);
          }
        } else {
          let segments: BioSegment[] = [];
          let bioStart = map.diskBlock;
          let bytes = 0;
          for (let b = block; b < block + map.count; b++) {
            const page = pageOfBlock.get(b)!;
            const at = (b % perPage) * this.blockSize;
            const last = segments[segments.length - 1];
            if (last !== undefined && last.buf === page.buf && (last.offset ?? 0) + (last.length ?? 0) === at) {
              last.length = (last.length ?? 0) + this.blockSize;
              bytes += this.blockSize;
              continue;
            }
            if (segments.length === BIO_SEGMENTS_MAX || bytes >= IO_CHUNK_BYTES) {
              bios.push({ op, sector: bioStart * this.blockSize / SECTOR_BYTES, segments });
              bioStart += bytes / this.blockSize;
              segments = [];
              bytes = 0;
            }
            segments.push({ buf: page.buf, offset: at, length: this.blockSize });
            bytes += this.blockSize;
          }
          bios.push({ op, sector: bioStart * this.blockSize / SECTOR_BYTES, segments });
        }
        block += map.count;
      }
      i = j + 1;
    }
    if (op === "write") this.dataWritesInFlight += bios.length;
    const results = await Promise.allSettled(bios.map(async (bio) => {
      let counted = op === "write";
      if (counted) {
        // A data write ends at its completion, inside the device's step: a polled commit waits
        // for this count with no promise job running. A failed one stops the filesystem there
        // and then, before any commit can map its blocks (the message is refined below).
        bio.endIo = (status) => {
          if (status !== 0) this.shutdownReason ??= `a writeback of inode ${inode.ino} failed (errno ${-status})`;
          counted = false;
          this.dataWriteDone();
        };
      }
      try {
        await this.io.submit(bio, syscall);
      } finally {
        // Never submitted (the filesystem was dead, or the bio was refused): it ends here.
        if (counted) {
          counted = false;
          this.dataWriteDone();
        }
      }
    }));
    const failed = results.find((r) => r.status === "rejected");
    if (failed === undefined && op === "read") {
      // What lies past EOF in the last page reads as zeros, whatever the block holds on disk.
      for (const page of pages) {
        const start = inode.size - page.index * PAGE_BYTES;
        if (start < PAGE_BYTES) page.buf.fill(0, Math.max(0, start));
      }
    }
    if (failed !== undefined) {
      // Blocks were allocated for data that did not reach the disk: a later commit would map
      // them with stale contents. Stop instead (ext4 aborts its journal on such errors).
      if (op === "write") this.shutdownReason = `a writeback of inode ${inode.ino} failed (${((failed as PromiseRejectedResult).reason as Error).message})`;
      throw (failed as PromiseRejectedResult).reason;
    }
  }

  private dataWriteDone(): void {
    this.dataWritesInFlight--;
    if (this.dataWritesInFlight === 0) for (const wake of this.dataWriteWaiters.splice(0)) wake();
  }

  /** Resolves when no data write of writeback is in flight. */
  private dataWritesIdle(): Promise<void> {
    if (this.dataWritesInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.dataWriteWaiters.push(resolve));
  }

  /** @internal Writes back the dirty blocks of `inode`, or of its pages over [from, from + length)
   *  (caller holds the inode lock). */
  async writebackInode(inode: Inode, syscall: string, from = 0, length = Infinity): Promise<void> {
    if (!this.pages.hasDirty(inode.ino)) return;
    const firstPage = Math.floor(from / PAGE_BYTES);
    const endPage = length === Infinity ? Infinity : Math.ceil((from + length) / PAGE_BYTES);
    const dirty = this.pages.pagesOf(inode.ino, true).filter((page) => page.index >= firstPage && page.index < endPage);
    if (dirty.length === 0) return;
    // Pages wholly past EOF (a racing truncate) are dropped rather than written.
    const live = dirty.filter((page) => page.index * PAGE_BYTES < inode.size);
    for (const page of dirty) if (page.index * PAGE_BYTES >= inode.size) this.reservedBlocks -= this.pages.drop(page);
    await this.pageIo(inode, live, "write", syscall);
    for (const page of live) {
      // Allocation consumed the reservations of the blocks it mapped.
      this.reservedBlocks -= bitCount(page.reservedMask);
      page.reservedMask = 0;
      this.pages.markClean(page, page.dirtyMask);
    }
  }

  /** @internal Writes back every dirty page, one inode at a time under its lock. */
  async writebackAll(syscall: string): Promise<void> {
    for (const ino of this.pages.dirtyInodes()) {
      const inode = this.inodes.get(ino);
      if (inode === undefined) continue;
      await inode.lock.run(() => this.writebackInode(inode, syscall));
    }
  }

  /**
   * @internal Before a file grows: the rest of the block holding the old end of file must read as
   * zeros from now on, and be zeros on disk (a crash may have left older bytes there). The page
   * read zeroes what lies past EOF; a block that is on disk is marked dirty so the zeros land.
   */
  async zeroEofTail(inode: Inode, syscall: string): Promise<void> {
    const tail = inode.size % this.blockSize;
    if (tail === 0) return;
    const index = Math.floor(inode.size / PAGE_BYTES);
    const page = await this.getPage(inode, index, true, syscall);
    this.unpin(page);
    this.checkAlive(syscall);
    const inPage = inode.size % PAGE_BYTES;
    const blockBit = 1 << Math.floor(inPage / this.blockSize);
    page.buf.fill(0, inPage, Math.ceil(inPage / this.blockSize) * this.blockSize);
    if ((this.mappedMask(inode, index) & blockBit) !== 0) this.pages.markDirty(page, blockBit);
  }

  /** @internal Releases a page that getPage() pinned. */
  unpin(page: Page): void {
    page.busy--;
  }

  /**
   * @internal A page of `inode`, pinned: the caller calls unpin() when done. A new page is read from disk (holes and the part past EOF read
   * as zeros) when `fill`; without `fill` the caller overwrites all of it, so it is not even zeroed.
   */
  async getPage(inode: Inode, index: number, fill: boolean, syscall: string): Promise<Page> {
    const cached = this.pages.get(inode.ino, index);
    if (cached !== undefined) {
      // Pinned until the caller is done with it: another file making room must not evict it.
      cached.busy++;
      return cached;
    }
    const read = fill && index * PAGE_BYTES < inode.size;
    // pageIo() writes every byte of a page it reads (data or zeros), so only a page past EOF needs zeroing.
    const zero = fill && !read;
    let page = this.pages.create(inode.ino, index, zero);
    for (let attempt = 0; page === undefined; attempt++) {
      // Only dirty (or pinned) pages are left: write back this inode's (we hold its lock), and
      // those of inodes whose lock is free right now (never waiting on another lock while
      // holding ours); if still no room, let the other holders run and try again.
      await this.writebackInode(inode, syscall);
      for (const ino of this.pages.dirtyInodes()) {
        const other = this.inodes.get(ino);
        const unlock = other === undefined || other === inode ? null : other.lock.tryLock();
        if (unlock === null) continue;
        try {
          await this.writebackInode(other!, syscall);
        } finally {
          unlock();
        }
      }
      page = this.pages.create(inode.ino, index, zero);
      if (page !== undefined) break;
      if (attempt === 1000) throw fail("ENOMEM", syscall, "the page cache is full of pages in use; raise arenaBytes");
      await new Promise<void>((resolve) => setTimeout(resolve, 0));
      this.checkAlive(syscall);
    }
    page.busy++; // pinned until the caller is done with it (unpin)
    if (read) {
      try {
        await this.pageIo(inode, [page], "read", syscall);
      } catch (error) {
        page.busy--;
        this.pages.drop(page);
        throw error;
      }
    }
    return page;
  }

  // ---- durability -----------------------------------------------------------------------------------

  /**
   * Commits the metadata copy-on-write: the blob goes to the area the newest durable superblock
   * does not use, then that area's superblock is written with PREFLUSH|FUA. Blocks freed before
   * the blob was taken become free once the superblock is durable.
   */
  async commit(syscall: string): Promise<void> {
    await this.commitLock.run(async () => {
      this.checkAlive(syscall);
      // Ordered data: the blob is taken when no data write is in flight, with no await between
      // that check and the snapshot, so every block it maps holds its data or is being flushed.
      while (this.dataWritesInFlight > 0) await this.dataWritesIdle();
      const plan = this.commitPlan();
      try {
        await this.io.write(plan.blobAt, plan.blob, syscall);
      } catch (error) {
        throw this.commitBlobFailed(plan, error);
      }
      try {
        await this.io.write(plan.superAt, plan.superblock, syscall, ["PREFLUSH", "FUA"]);
      } catch (error) {
        throw this.commitSuperFailed(plan, error);
      }
      this.commitDone(plan);
    });
  }

  /**
   * @internal commit() for a synchronous caller: the same writes, waited for by polling the
   * device. EAGAIN when an asynchronous commit holds the commit lock (a synchronous call cannot
   * wait for it); data writes in flight complete in the polled steps first.
   */
  commitPolled(syscall: string): void {
    const own = !this.commitHeldPolled;
    if (own && !this.commitLock.tryAcquire()) throw fail("EAGAIN", syscall, "a metadata commit started by an asynchronous call is in progress; a synchronous call cannot wait for it");
    try {
      this.checkAlive(syscall);
      if (this.dataWritesInFlight > 0) this.disk.device.poll(this.dataWritesDone, syscall);
      const plan = this.commitPlan();
      try {
        this.io.writePolled(plan.blobAt, plan.blob, syscall);
      } catch (error) {
        throw this.commitBlobFailed(plan, error);
      }
      try {
        this.io.writePolled(plan.superAt, plan.superblock, syscall, ["PREFLUSH", "FUA"]);
      } catch (error) {
        throw this.commitSuperFailed(plan, error);
      }
      this.commitDone(plan);
    } finally {
      if (own) this.commitLock.release();
    }
  }

  /** A synchronous call holds the commit lock (holdCommitPolled()). */
  private commitHeldPolled = false;

  /**
   * @internal For a synchronous write that may commit (O_DSYNC, or extending: ENOSPC may call for
   * one): takes the commit lock, if free, before any of its IO, and holds it to the call's end
   * (after the inode lock, in the order queued completions take the two). A commit another caller
   * starts meanwhile (a queued completion run inside one of the call's device steps) then waits
   * for the call, rather than the call finding the lock taken after its data went out. False when
   * the lock is held (the call fails with EAGAIN, having done nothing).
   */
  holdCommitPolled(): boolean {
    if (!this.commitLock.tryAcquire()) return false;
    this.commitHeldPolled = true;
    return true;
  }

  /** @internal Lets go of the lock holdCommitPolled() took. */
  releaseCommitPolled(): void {
    this.commitHeldPolled = false;
    this.commitLock.release();
  }

  /** What a polled commit waits for first: no data write in flight. */
  private readonly dataWritesDone = { fs: this as Filesystem, get finished(): boolean { return this.fs.dataWritesInFlight === 0; } };

  /** A commit's snapshot: the blob of every inode's metadata, the superblock naming it, and the
   *  frees it makes good (taken now, so they are not reused before it is durable). */
  private commitPlan(): CommitPlan {
    const version = this.metaVersion;
    const records: InodeRecord[] = [];
    for (const inode of [...this.inodes.values()].sort((a, b) => a.ino - b.ino)) {
      if (inode.name === null) continue;
      records.push({ ino: inode.ino, size: inode.size, mtimeMs: inode.mtimeMs, ctimeMs: inode.ctimeMs, name: inode.name, extents: this.extentsOf(inode.ino) });
    }
    const frees = this.pendingFree.splice(0);
    const generation = this.generation + 1;
    const slot = generation % 2;
    const encoded = encodeMeta(generation, records);
    const blob = new Uint8Array(Math.ceil(encoded.length / this.blockSize) * this.blockSize);
    blob.set(encoded);
    const sb = encodeSuperblock({
      version: FORMAT_VERSION, blockSize: this.blockSize, blockCount: this.geometry.blockCount,
      inodeCount: this.geometry.inodeCount, metaAreaBlocks: this.geometry.metaAreaBlocks, slot,
      generation, metaBytes: encoded.length, metaChecksum: crc32c(encoded),
    });
    return {
      version, frees, generation, blob, blobAt: this.geometry.metaAreaStart[slot] * this.blockSize,
      superblock: slotBytes(this.disk, sb), superAt: SUPER_SLOT_OFFSETS[slot],
    };
  }

  /** The blob's write failed. No superblock points at its area yet: the same generation can be
   *  written again, and the frees wait for it. Returns the error to throw. */
  private commitBlobFailed(plan: CommitPlan, error: unknown): unknown {
    this.pendingFree.unshift(...plan.frees);
    return error;
  }

  /** The superblock's write (PREFLUSH: the blob and every data write completed so far are durable
   *  before it; FUA: it is itself durable on completion) failed. It may have reached the device
   *  all the same: its generation now names this blob, which must never be overwritten by another.
   *  Stop, as a journal abort does. Returns the error to throw. */
  private commitSuperFailed(plan: CommitPlan, error: unknown): unknown {
    this.shutdownReason = `the superblock write of generation ${plan.generation} failed (${(error as Error).message})`;
    return error;
  }

  /** The commit is durable: its generation is the newest, and its frees take effect. */
  private commitDone(plan: CommitPlan): void {
    this.generation = plan.generation;
    this.durableVersion = Math.max(this.durableVersion, plan.version);
    for (const [start, length] of plan.frees) {
      if (this.disk.core.fs_free_run(start, length) !== 0) throw new Error(`dioemu: freeing blocks ${start}+${length} failed`);
    }
  }

  /** @internal Persists what fsync (full) or fdatasync needs for `inode`; ends with a cache flush. */
  async syncInode(inode: Inode, datasync: boolean, syscall: string): Promise<void> {
    this.checkAlive(syscall);
    await inode.lock.run(() => this.writebackInode(inode, syscall));
    if (this.needsCommit(inode, datasync)) await this.commit(syscall);
    else await this.io.flush(syscall);
  }

  /** @internal syncInode() for a synchronous caller (FileHandle.syncSync()): EAGAIN, before any
   *  IO, when it would wait for an asynchronous call (the inode lock, dirty pages to write back,
   *  a commit in progress). */
  syncInodePolled(inode: Inode, datasync: boolean, syscall: string): void {
    this.checkAlive(syscall);
    if (inode.lock.locked) throw fail("EAGAIN", syscall, `inode ${inode.ino} is locked by an asynchronous call in flight; a synchronous call cannot wait for it`);
    if (this.pages.hasDirty(inode.ino)) throw fail("EAGAIN", syscall, `inode ${inode.ino} has dirty page-cache pages; writing them back is asynchronous (use sync() or datasync())`);
    if (this.needsCommit(inode, datasync)) this.commitPolled(syscall);
    else this.io.flushPolled(syscall);
  }

  /** Writes back every file and commits the metadata (sync(2) for this filesystem). */
  async sync(): Promise<void> {
    this.checkAlive("sync");
    const done = this.recorder?.syncStart(null, "sync");
    await this.syncAll();
    done?.(true);
  }

  private async syncAll(): Promise<void> {
    await this.writebackAll("sync");
    if (this.metaVersion > this.durableVersion) await this.commit("sync");
    else await this.io.flush("sync");
  }

  /** Waits for IO in flight, writes everything back, commits, and releases the filesystem. */
  async unmount(): Promise<void> {
    this.checkAlive("umount");
    for (const inode of this.inodes.values()) await inode.dioWait();
    await this.sync();
    // Every buffered operation holds its inode's lock: holding them all, none is in flight and
    // no page buffer is in use when the cache goes.
    const unlocks: (() => void)[] = [];
    for (const inode of [...this.inodes.values()].sort((a, b) => a.ino - b.ino)) unlocks.push(await inode.lock.lock());
    for (const handle of [...this.handles]) handle.closeQuietly();
    this.pages.dropAll();
    for (const unlock of unlocks) unlock();
    this.dioStep("evict_inodes");
    // The completion queue is drained and destroyed after the inodes went and before the
    // superblock is put (3.11+ generic_shutdown_super), and the pointer reads null afterwards.
    const queue = this.dioQueue;
    this.dioQueue = null;
    if (queue !== null) {
      await queue.destroy();
      this.dioStep("queue_destroyed");
    }
    this.dioStep("put_super");
    this.state = "unmounted";
    if (this.disk.mounted === this) this.disk.mounted = undefined;
  }

  /**
   * Checks the durable image: both superblocks, the newest one's metadata (checksum, structure,
   * extents in range and not shared), and that the in-memory map agrees with it where nothing
   * changed since. Returns every problem found.
   */
  async fsck(): Promise<{ ok: boolean; errors: string[] }> {
    this.checkAlive("fsck");
    const errors: string[] = [];
    const lbs = this.disk.limits.logicalBlockSize;
    const sbs: Superblock[] = [];
    for (const [i, offset] of SUPER_SLOT_OFFSETS.entries()) {
      const read = decodeSuperblock((await this.io.read(offset, lbs, "fsck")).subarray(0, SUPER_BYTES));
      if (read.kind === "bad-checksum") errors.push(`superblock ${i}: checksum mismatch`);
      else if (read.kind === "newer") errors.push(`superblock ${i}: format version ${read.version} is newer than ${FORMAT_VERSION}`);
      else if (read.kind === "ok") {
        if (read.sb.slot !== i) errors.push(`superblock ${i}: claims to be slot ${read.sb.slot}`);
        else sbs.push(read.sb);
      }
    }
    if (sbs.length === 0) return { ok: false, errors: [...errors, "no valid superblock"] };
    const sb = sbs.reduce((a, b) => (b.generation > a.generation ? b : a));
    if (sb.blockCount !== this.geometry.blockCount || sb.blockSize !== this.blockSize || sb.metaAreaBlocks !== this.geometry.metaAreaBlocks) {
      errors.push(`superblock ${sb.slot}: geometry differs from the mounted filesystem's`);
    }
    const readBytes = Math.ceil(sb.metaBytes / lbs) * lbs;
    const blob = (await this.io.read(this.geometry.metaAreaStart[sb.slot] * this.blockSize, readBytes, "fsck")).subarray(0, sb.metaBytes);
    if (crc32c(blob) !== sb.metaChecksum) return { ok: false, errors: [...errors, `metadata of generation ${sb.generation}: checksum mismatch`] };
    try {
      const decoded = decodeMeta(blob);
      if (decoded.generation !== sb.generation) errors.push(`metadata generation ${decoded.generation} differs from its superblock's ${sb.generation}`);
      errors.push(...checkMeta(this.geometry, decoded.inodes));
    } catch (error) {
      errors.push(`metadata: ${(error as Error).message}`);
    }
    return { ok: errors.length === 0, errors };
  }
}
