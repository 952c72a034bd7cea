// Disk: one emulated disk in one shared WebAssembly memory: limits, IO-buffer arena, the block
// layer's entry, the device with its volatile cache, power cuts, tracing and statistics.
import { DioError } from "./errors.js";
import { validateLimits, type QueueLimits } from "./limits.js";
import {
  CTRL, FEATURE_CACHE_BYPASS, FEATURE_FUA, FEATURE_WRITE_CACHE, LAYOUT_BASE, BVEC_CAPACITY, PIECE_CAPACITY,
  BATCH_CAPACITY, DIO_IOV_CAPACITY, DIO_BIO_CAPACITY, DIO_BVEC_CAPACITY, planRegions, type RegionPlan,
} from "./layout.js";
import { instantiateCore, type CoreExports } from "./core.js";
import { RangeAllocator } from "./ranges.js";
import { Prng } from "./prng.js";
import { Tracer, type Trace } from "./trace.js";
import { Device, DEFAULT_LATENCY, type FaultRule, type LatencyTicks } from "./device.js";
import { BlockQueue } from "./block.js";
import { Destager } from "./destager.js";
import { O_ACCMODE, SECTOR_BYTES } from "./constants.js";
import { BlockDeviceHandle } from "./bdev.js";

export type { QueueLimits } from "./limits.js";
export type { FaultRule } from "./device.js";

/** Options of Disk.create() (API.md), plus dioemu's own sizing knobs. */
export interface DiskOptions {
  /** Bytes, a multiple of logicalBlockSize. */
  size: number;
  logicalBlockSize?: 512 | 1024 | 2048 | 4096;
  physicalBlockSize?: number;
  writeCache?: boolean;
  fua?: boolean;
  limits?: Partial<QueueLimits>;
  backing?: "memory" | { path: string };
  executor?: "worker" | "inline";
  seed?: number;
  /** Capacity of the volatile write cache in bytes (rounded down to a power of two of 4 KiB
   *  lines); when it is full the oldest cached data is destaged (a large write may go past it
   *  instead: cacheBypass). Default min(32 MiB, size). */
  cacheBytes?: number;
  /** Size of the IO-buffer arena that alloc() hands out. Default 16 MiB. */
  arenaBytes?: number;
  /** Device latency in virtual ticks. */
  latency?: Partial<LatencyTicks>;
  /**
   * When the device moves (its virtual clock advances only while the emulated CPU is idle):
   * - "drain" (default in Node): once the microtask queue drains, with no event-loop turn per step;
   *   requests submitted in one drain are in flight together, and up to 256 steps follow one
   *   another before a turn lets timers and I/O in. Fast: a step costs a microtask, not a turn.
   * - "turn": one device step per event-loop turn (setImmediate). Code that awaits a turn finds
   *   requests still in flight and can act between steps; each step costs a turn (about 1 us).
   * Browsers always step per task.
   */
  completions?: "drain" | "turn";
  /** Use a SharedArrayBuffer-backed memory. Default: where available (Node; cross-origin
   *  isolated pages). false forces a plain memory and the inline executor. */
  sharedMemory?: boolean;
  /**
   * Who writes the volatile cache back to the media once it fills:
   * - "background" (default with the worker executor and a cache of 8 MiB or more): a Worker
   *   thread, started when first needed, writes back the older entries the device releases once
   *   the unreleased part passes nine sixteenths of the cache (all but the newest half are
   *   released), off the thread that submits IO. What is released, and
   *   what reaches the media, is decided by the device alone, so results, traces and power cuts
   *   do not depend on the thread's timing. Needs shared memory.
   * - "inline" (default otherwise): the thread that submits IO writes back the oldest entry when
   *   an append finds the cache full.
   */
  destage?: "background" | "inline";
  /**
   * Whether a large write may go past a full cache straight to the media (default true; only
   * with a write cache). A write request of 64 KiB or more that would not fit beside the cache's
   * writes at risk within their bound (all of the cache with inline destaging, half of it with
   * background destaging) goes to the media as a FUA write would, dropping older cached versions of its
   * sectors, instead of pushing older writes out: it is durable at once, which the durability
   * contract allows (a power cut may keep any version later than the durable one), and its bytes
   * are copied once, not twice. So a long stream of large writes keeps its oldest unflushed data at
   * risk rather than its newest. false keeps every write in the cache (what reaches the media when
   * it fills is then always the oldest), for crash tests that want the newest writes at risk.
   */
  cacheBypass?: boolean;
}

/** Counters since the disk was created (API.md). */
export interface DiskStats {
  bios: number;
  splits: number;
  flushes: number;
  fuaWrites: number;
  /** Write requests that went past a full cache straight to the media (DiskOptions.cacheBypass). */
  bypassWrites: number;
  bytesRead: number;
  bytesWritten: number;
  /** Bytes held in the volatile cache and not yet durable; every cached version of a sector
   *  counts (three overwrites of one 4 KiB block before a flush count 12 KiB). */
  dirtyBytes: number;
}

const CREATE = "Disk.create";
/** The smallest cache destaged in the background by default: a thread pays off under sustained
 *  IO into a large cache, not for the small caches of short runs. */
const BACKGROUND_DESTAGE_CACHE_MIN = 8 << 20;
const DEFAULT_CACHE_BYTES_MAX = 32 << 20;
const MIN_CACHE_BYTES = 16 << 10;
const DEFAULT_ARENA_BYTES = 16 << 20;

function invalid(syscall: string, message: string): DioError {
  return new DioError("EINVAL", syscall, message);
}

function checkSize(size: unknown, logicalBlockSize: number): number {
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size <= 0) {
    throw invalid(CREATE, `size ${String(size)} must be a positive integer number of bytes`);
  }
  if (size % logicalBlockSize !== 0) {
    throw invalid(CREATE, `size ${size} is not a multiple of the ${logicalBlockSize}-byte logical block size`);
  }
  return size;
}

function checkBytes(name: string, value: unknown, min: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value % 4096 !== 0) {
    throw invalid(CREATE, `${name} ${String(value)} must be a multiple of 4096 and at least ${min}`);
  }
  return value;
}

function sharedMemoryAvailable(): boolean {
  return typeof SharedArrayBuffer !== "undefined" && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;
}

/** One emulated disk. Create with Disk.create(). */
export class Disk {
  readonly size: number;
  readonly limits: Readonly<QueueLimits>;
  readonly seed: number;
  readonly executor: "worker" | "inline";
  /** @internal The block layer's entry: submitBio(). Not public API. */
  readonly queue: BlockQueue;
  /** @internal */
  readonly memory: WebAssembly.Memory;
  /** @internal */
  readonly core: CoreExports;
  /** @internal */
  readonly device: Device;
  /** @internal */
  readonly plan: RegionPlan;
  private readonly arena: RangeAllocator;
  private readonly tracer: Tracer;
  private readonly prng: Prng;
  private readonly statView: BigUint64Array;
  private readonly bypassView: BigUint64Array;
  private closed = false;
  private crashes = 0;
  /** @internal The filesystem mounted on this disk, if any (one at a time). */
  mounted: { powerCut(): void; abandon(): void } | undefined;
  private readonly powerCutHooks: (() => void)[] = [];

  private constructor(init: {
    size: number; limits: QueueLimits; seed: number; executor: "worker" | "inline"; memory: WebAssembly.Memory;
    core: CoreExports; plan: RegionPlan; latency: LatencyTicks; completions: "drain" | "turn"; destage: "background" | "inline";
  }) {
    this.size = init.size;
    this.limits = Object.freeze({ ...init.limits });
    this.seed = init.seed;
    this.executor = init.executor;
    this.memory = init.memory;
    this.core = init.core;
    this.plan = init.plan;
    this.prng = new Prng(init.seed);
    this.tracer = new Tracer();
    this.arena = new RangeAllocator(init.plan.arenaBase, init.plan.arenaBytes);
    this.device = new Device(init.core, this.prng, this.tracer, init.limits.writeCache, init.latency, init.completions);
    this.queue = new BlockQueue(init.core, init.memory, this.device, this.tracer, this.limits,
      { base: init.plan.zeroPageBase, end: init.plan.arenaBase + init.plan.arenaBytes },
      { bvecBase: init.plan.bvecBase, bvecCapacity: BVEC_CAPACITY, pieceBase: init.plan.pieceBase },
      init.size / SECTOR_BYTES);
    this.statView = new BigUint64Array(init.memory.buffer, LAYOUT_BASE + CTRL.STAT_BIOS, 8);
    this.bypassView = new BigUint64Array(init.memory.buffer, LAYOUT_BASE + CTRL.STAT_BYPASS_WRITES, 1);
    // ZERO_PAGE: what sub-block zeroing writes from, just below the arena (inside the bounds the
    // block layer and the core accept for bio segments, outside what alloc() hands out).
    this.zeroPage = new Uint8Array(init.memory.buffer, init.plan.zeroPageBase, 4096);
    this.buffer = init.memory.buffer;
    this.destage = init.destage;
    this.destager = init.destage === "background" ? new Destager(this) : null;
  }

  /** Who writes the volatile cache back (DiskOptions.destage). */
  readonly destage: "background" | "inline";
  /** @internal The background destager, when `destage` is "background". */
  readonly destager: Destager | null;

  /** @internal The memory's buffer (the memory never grows: its maximum is its size). */
  readonly buffer: ArrayBufferLike;

  /** @internal The shared page of zeros (never written). */
  readonly zeroPage: Uint8Array;

  /** Creates a disk per `opts`: limits validated as Linux does, memory laid out, core loaded. */
  static async create(opts: DiskOptions): Promise<Disk> {
    if (opts === null || typeof opts !== "object") throw invalid(CREATE, "options must be an object with a size");
    if (opts.backing !== undefined && opts.backing !== "memory") {
      throw new DioError("ENOTSUP", CREATE, "file backing is not available yet: only backing \"memory\" is supported");
    }
    if (opts.executor !== undefined && opts.executor !== "worker" && opts.executor !== "inline") {
      throw invalid(CREATE, `executor ${String(opts.executor)} must be "worker" or "inline"`);
    }
    if (opts.destage !== undefined && opts.destage !== "background" && opts.destage !== "inline") {
      throw invalid(CREATE, `destage ${String(opts.destage)} must be "background" or "inline"`);
    }
    if (opts.cacheBypass !== undefined && typeof opts.cacheBypass !== "boolean") {
      throw invalid(CREATE, `cacheBypass ${String(opts.cacheBypass)} must be a boolean`);
    }
    const seed = opts.seed ?? 1;
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw invalid(CREATE, `seed ${String(seed)} must be an integer in 0..4294967295`);
    const limits = validateLimits(opts.limits, {
      logicalBlockSize: opts.logicalBlockSize, physicalBlockSize: opts.physicalBlockSize,
      writeCache: opts.writeCache, fua: opts.fua,
    });
    const size = checkSize(opts.size, limits.logicalBlockSize);
    const cacheBytes = limits.writeCache
      ? checkBytes("cacheBytes", opts.cacheBytes ?? Math.max(MIN_CACHE_BYTES, Math.min(DEFAULT_CACHE_BYTES_MAX, size - (size % 4096))), MIN_CACHE_BYTES)
      : 0;
    const arenaBytes = checkBytes("arenaBytes", opts.arenaBytes ?? DEFAULT_ARENA_BYTES, 4096);
    const plan = planRegions(size, cacheBytes, arenaBytes);
    if (plan === null) {
      throw invalid(CREATE, `size ${size} with a ${cacheBytes}-byte cache and a ${arenaBytes}-byte arena cannot fit in wasm32 memory (4 GiB in all)`);
    }
    const latency = { ...DEFAULT_LATENCY, ...opts.latency };
    for (const [name, value] of Object.entries(latency)) {
      if (!Number.isInteger(value) || value < 0) throw invalid(CREATE, `latency.${name} ${String(value)} must be a non-negative integer`);
    }
    if (latency.readMin > latency.readMax || latency.writeMin > latency.writeMax || latency.flushMin > latency.flushMax) {
      throw invalid(CREATE, "latency minimums must not exceed their maximums");
    }
    if (opts.completions !== undefined && opts.completions !== "drain" && opts.completions !== "turn") {
      throw invalid(CREATE, `completions ${String(opts.completions)} must be "drain" or "turn"`);
    }
    if (opts.sharedMemory !== undefined && typeof opts.sharedMemory !== "boolean") {
      throw invalid(CREATE, `sharedMemory ${String(opts.sharedMemory)} must be a boolean`);
    }
    const shared = opts.sharedMemory ?? sharedMemoryAvailable();
    if (shared && !sharedMemoryAvailable()) {
      throw new DioError("ENOTSUP", CREATE, "sharedMemory: true needs SharedArrayBuffer (a cross-origin isolated page)");
    }
    if (!shared && opts.executor === "worker") {
      throw new DioError("ENOTSUP", CREATE, "executor \"worker\" needs shared memory; use \"inline\"");
    }
    if (!shared && opts.destage === "background") {
      throw new DioError("ENOTSUP", CREATE, "destage \"background\" needs shared memory; use \"inline\"");
    }
    let memory: WebAssembly.Memory;
    try {
      memory = new WebAssembly.Memory({ initial: plan.pages, maximum: plan.pages, shared } as WebAssembly.MemoryDescriptor);
    } catch (error) {
      throw new DioError("ENOMEM", CREATE, `cannot reserve ${plan.pages * 64} KiB of memory for the disk (${(error as Error).message})`);
    }
    const core = await instantiateCore(memory);
    writeControlBlock(memory, plan, size, limits, opts.cacheBypass ?? true);
    const status = core.core_init();
    if (status !== 0) throw new Error(`dioemu: the core refused the control block (${status})`);
    const executor = opts.executor ?? (shared ? "worker" : "inline");
    const destage = limits.writeCache ? opts.destage ?? (executor === "worker" && cacheBytes >= BACKGROUND_DESTAGE_CACHE_MIN ? "background" : "inline") : "inline";
    return new Disk({ size, limits, seed, executor, memory, core, plan, latency, completions: opts.completions ?? "drain", destage });
  }

  /** Opens an existing image file. File backing arrives with its own issue. */
  static async open(path: string, _opts?: Partial<DiskOptions>): Promise<Disk> {
    throw new DioError("ENOTSUP", "Disk.open", `cannot open ${path}: file-backed disks are not available yet`);
  }

  private checkOpen(syscall: string): void {
    if (this.closed) throw new DioError("EIO", syscall, "the disk is closed");
  }

  /** @internal Every view alloc() handed out: each lies in the arena, which the direct-IO engine
   *  then knows without reading the view's buffer and range (a sub-view is checked in full). */
  readonly arenaViews = new WeakSet<Uint8Array>();
  /** @internal The direct-IO engine's typed views of this disk's tables (host/dio.ts), made on
   *  first use. */
  dioViews: object | undefined;

  /** An IO buffer of `size` bytes in the emulator's memory, aligned to `align` (default 4096), zeroed. */
  alloc(size: number, align = 4096): Uint8Array {
    this.checkOpen("alloc");
    if (!Number.isSafeInteger(size) || size <= 0) throw invalid("alloc", `size ${String(size)} must be a positive integer`);
    if (!Number.isInteger(align) || align <= 0 || (align & (align - 1)) !== 0 || align > 1 << 20) {
      throw invalid("alloc", `align ${String(align)} must be a power of two up to 1 MiB`);
    }
    const start = this.arena.allocate(size, align);
    if (start < 0) {
      throw new DioError("ENOMEM", "alloc", `no room for ${size} bytes aligned to ${align} in the ${this.plan.arenaBytes}-byte IO-buffer arena (${this.arena.used} bytes in use); free buffers or raise arenaBytes`);
    }
    const buf = new Uint8Array(this.memory.buffer, start, size);
    buf.fill(0);
    this.arenaViews.add(buf);
    return buf;
  }

  /** Returns a buffer from alloc(). A foreign or already-freed buffer is EINVAL, never a corruption. */
  free(buf: Uint8Array): void {
    this.checkOpen("free");
    if (!(buf instanceof Uint8Array) || buf.buffer !== this.memory.buffer) {
      throw invalid("free", "the buffer was not allocated by this disk's alloc()");
    }
    const size = this.arena.sizeOf(buf.byteOffset);
    if (size === undefined || size !== buf.byteLength) {
      throw invalid("free", `no live allocation of ${buf.byteLength} bytes starts at address ${buf.byteOffset} (already freed, or a sub-view)`);
    }
    this.arena.release(buf.byteOffset);
  }

  /**
   * The whole disk as a file (/dev/sdX): a FileHandle with O_DIRECT through the direct-IO engine
   * (identity mapping, logical-block alignment); reads stop at the end, writes there are ENOSPC.
   */
  async openBlockDevice(flags: number): Promise<BlockDeviceHandle> {
    this.checkOpen("open");
    if (typeof flags !== "number" || !Number.isInteger(flags) || flags < 0) throw invalid("open", `flags ${String(flags)} must be a non-negative integer`);
    if ((flags & O_ACCMODE) === O_ACCMODE) throw invalid("open", `flags ${flags.toString(8)} (octal) ask for access mode 3`);
    return new BlockDeviceHandle(this, flags);
  }

  /** Starts a blktrace-style recording of the block layer. */
  startTrace(): Trace {
    return this.tracer.start();
  }

  /**
   * A power cut. For each sector written since it was last made durable, the device keeps the
   * durable version or a later one, by the seed; with `torn`, a write in flight or in the cache may
   * survive for some sectors and not others. Requests in flight fail with EIO.
   */
  async crash(opts: { torn?: boolean } = {}): Promise<void> {
    this.checkOpen("crash");
    this.crashes++;
    // Every filesystem on the disk dies with the power; its page cache goes back to the arena.
    this.mounted?.powerCut();
    this.mounted = undefined;
    const seed = (this.seed * 0x9e3779b1 + this.crashes * 0x85ebca6b + this.prng.nextU32()) >>> 0;
    this.device.powerCut(seed, opts.torn === true);
    this.queue.failWaiting(-5);
    for (const hook of this.powerCutHooks) hook();
  }

  /** @internal Runs `hook` at every power cut, after the device dropped its cache; returns the
   *  function that removes it. */
  onPowerCut(hook: () => void): () => void {
    this.powerCutHooks.push(hook);
    return () => {
      const index = this.powerCutHooks.indexOf(hook);
      if (index >= 0) this.powerCutHooks.splice(index, 1);
    };
  }

  /**
   * Makes the device fail matching requests: the next `times` (default 1) requests of `op` that
   * overlap [sector, sector + sectors) complete with -errno (default EIO) and move no data. A
   * flush rule matches any flush. Faults are kept apart from clean data: nothing else changes.
   */
  injectFault(rule: FaultRule): void {
    this.checkOpen("injectFault");
    if (rule === null || typeof rule !== "object") throw invalid("injectFault", "a fault rule must be an object");
    if (rule.op !== "read" && rule.op !== "write" && rule.op !== "flush") throw invalid("injectFault", `op ${String(rule.op)} must be read, write or flush`);
    const sector = rule.sector ?? 0;
    const sectors = rule.sectors ?? this.size / SECTOR_BYTES - sector;
    const errno = rule.errno ?? 5;
    const times = rule.times ?? 1;
    if (!Number.isInteger(sector) || sector < 0 || !Number.isInteger(sectors) || sectors <= 0) {
      throw invalid("injectFault", `sector ${String(rule.sector)} and sectors ${String(rule.sectors)} must describe a non-empty range`);
    }
    if (!Number.isInteger(errno) || errno <= 0 || errno > 4095) throw invalid("injectFault", `errno ${String(rule.errno)} must be a positive errno`);
    if (!(times === Infinity || (Number.isInteger(times) && times > 0))) throw invalid("injectFault", `times ${String(rule.times)} must be a positive integer or Infinity`);
    this.device.faults.push({ op: rule.op, sector, sectors, errno, times });
  }

  /** Removes every fault rule not yet used up. */
  clearFaults(): void {
    this.device.faults.length = 0;
  }

  /** @internal Power cuts so far: a filesystem mounted before the latest one is dead. */
  get crashCount(): number {
    return this.crashes;
  }

  /** @internal Whether close() has run. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Counters since creation. */
  stats(): DiskStats {
    // Released cache entries count as written back, whether or not the thread got to them yet.
    if (!this.closed) this.destager?.settle();
    const at = (field: number): number => Number(Atomics.load(this.statView, (field - CTRL.STAT_BIOS) / 8));
    return {
      bios: at(CTRL.STAT_BIOS), splits: at(CTRL.STAT_SPLITS), flushes: at(CTRL.STAT_FLUSHES),
      fuaWrites: at(CTRL.STAT_FUA_WRITES), bypassWrites: Number(Atomics.load(this.bypassView, 0)), bytesRead: at(CTRL.STAT_BYTES_READ),
      bytesWritten: at(CTRL.STAT_BYTES_WRITTEN), dirtyBytes: at(CTRL.STAT_DIRTY_BYTES),
    };
  }

  /** AIO requests accepted by io_submit and not yet completed (their events not yet posted). */
  private requestsHeld = 0;
  private requestsDone: (() => void) | undefined;

  /** @internal io_submit accepted a request for this disk: close() waits for it until
   *  releaseRequest(), called once, when its event is posted. */
  holdRequest(): void {
    this.requestsHeld++;
  }
  /** @internal See holdRequest(). */
  releaseRequest(): void {
    if (--this.requestsHeld === 0) this.requestsDone?.();
  }

  /** Waits for IO in flight (AIO requests accepted by io_submit included, through their events),
   *  then releases the disk; nothing keeps the process alive after. */
  close(): Promise<void> {
    // Every caller waits for the one closing.
    this.closing ??= this.closeOnce();
    return this.closing;
  }
  private closing: Promise<void> | undefined;

  private async closeOnce(): Promise<void> {
    while (this.requestsHeld > 0 || !this.device.idle) {
      if (this.requestsHeld > 0) await new Promise<void>((resolve) => { this.requestsDone = resolve; });
      else await new Promise<void>((resolve) => { this.device.onIdle = resolve; });
    }
    this.requestsDone = undefined;
    this.device.onIdle = undefined;
    if (this.destager !== null) {
      await this.destager.stop();
      // What was released counts as written back, wherever the thread stopped (stats()).
      this.destager.settle();
    }
    this.closed = true;
    // A filesystem still mounted dies with the disk; its flush thread stops.
    this.mounted?.abandon();
    this.mounted = undefined;
  }

  /** @internal A copy of the image's bytes as reads see them now, for tools and tests. */
  async readSectors(sector: number, sectors: number): Promise<Uint8Array> {
    const buf = this.alloc(sectors * SECTOR_BYTES);
    try {
      const status = await this.queue.submitBioWait({ op: "read", sector, segments: [{ buf }] });
      if (status !== 0) throw DioError.fromErrno(status, "pread", `reading ${sectors} sectors at sector ${sector} failed`);
      return buf.slice();
    } finally {
      this.free(buf);
    }
  }
}

function writeControlBlock(memory: WebAssembly.Memory, plan: RegionPlan, size: number, limits: QueueLimits, cacheBypass: boolean): void {
  const ctrl = new DataView(memory.buffer, LAYOUT_BASE);
  const put = (field: number, value: number): void => ctrl.setUint32(field, value >>> 0, true);
  put(CTRL.IMAGE_BASE, plan.imageBase);
  put(CTRL.IMAGE_BYTES, size);
  put(CTRL.SECTOR_COUNT, size / SECTOR_BYTES);
  put(CTRL.LOGICAL_BLOCK, limits.logicalBlockSize);
  put(CTRL.PHYSICAL_BLOCK, limits.physicalBlockSize);
  put(CTRL.MAX_SECTORS, limits.maxSectors);
  put(CTRL.MAX_SEGMENTS, limits.maxSegments);
  put(CTRL.MAX_SEGMENT_SIZE, limits.maxSegmentSize);
  put(CTRL.SEG_BOUNDARY_MASK, limits.segBoundaryMask);
  put(CTRL.VIRT_BOUNDARY_MASK, limits.virtBoundaryMask);
  put(CTRL.CHUNK_SECTORS, limits.chunkSectors);
  put(CTRL.FEATURES, (limits.writeCache ? FEATURE_WRITE_CACHE : 0) | (limits.fua ? FEATURE_FUA : 0) |
    (limits.writeCache && cacheBypass ? FEATURE_CACHE_BYPASS : 0));
  put(CTRL.BVEC_BASE, plan.bvecBase);
  put(CTRL.BVEC_CAPACITY, BVEC_CAPACITY);
  put(CTRL.PIECE_BASE, plan.pieceBase);
  put(CTRL.PIECE_CAPACITY, PIECE_CAPACITY);
  put(CTRL.BATCH_BASE, plan.batchBase);
  put(CTRL.BATCH_CAPACITY, BATCH_CAPACITY);
  put(CTRL.CACHE_HEADER_BASE, plan.cacheHeaderBase);
  put(CTRL.CACHE_DATA_BASE, plan.cacheDataBase);
  put(CTRL.CACHE_SLOTS, plan.cacheSlots);
  put(CTRL.CACHE_INDEX_BASE, plan.cacheIndexBase);
  put(CTRL.CACHE_INDEX_SLOTS, plan.cacheIndexSlots);
  put(CTRL.CACHE_LINE_MAP, plan.cacheLineMap);
  put(CTRL.ARENA_BASE, plan.zeroPageBase);
  put(CTRL.ARENA_BYTES, plan.arenaBytes + 4096);
  put(CTRL.ZERO_PAGE, plan.zeroPageBase);
  put(CTRL.FS_INODE_BASE, plan.fsInodeBase);
  put(CTRL.FS_INODE_CAPACITY, plan.fsInodeCapacity);
  put(CTRL.FS_EXTENT_BASE, plan.fsExtentBase);
  put(CTRL.FS_EXTENT_CAPACITY, plan.fsExtentCapacity);
  put(CTRL.FS_BITMAP_BASE, plan.fsBitmapBase);
  put(CTRL.FS_BLOCK_COUNT, 0);
  put(CTRL.FS_SCRATCH_BASE, plan.fsScratchBase);
  put(CTRL.FS_SCRATCH_CAPACITY, plan.fsScratchCapacity);
  put(CTRL.DIO_IOV_BASE, plan.dioIovBase);
  put(CTRL.DIO_IOV_CAPACITY, DIO_IOV_CAPACITY);
  put(CTRL.DIO_BIO_BASE, plan.dioBioBase);
  put(CTRL.DIO_BIO_CAPACITY, DIO_BIO_CAPACITY);
  put(CTRL.DIO_BVEC_BASE, plan.dioBvecBase);
  put(CTRL.DIO_BVEC_CAPACITY, DIO_BVEC_CAPACITY);
}
