// Runs fio jobs (jobfile.ts) against an in-memory dioemu disk and gathers fio's statistics:
// per direction IO bytes, IOPS, bandwidth, and completion/total latency histograms (HdrHistogram).
//
// Each job (and each of its `numjobs` instances, run one after the other) gets a fresh disk and
// filesystem sized for it. The file is laid out first (written whole and synced, as fio lays out
// files; verify counts on it: every block of a file holds a checkable header from the start).
// Then IO runs until `size` bytes are done, or
// for `runtime` seconds (`time_based` loops over the file). Engines: `libaio` keeps `iodepth`
// requests in flight through an AIO context; `psync` and `sync` do one call at a time: on an
// O_DIRECT file (`direct=1`) through the synchronous calls (writeSync/readSync and, for fsync=/
// fdatasync=, syncSync/datasyncSync), as fio's engines make pread/pwrite system calls, and through
// the promise calls when a synchronous one cannot go ahead (EAGAIN) or the file is buffered.
// `verify=crc32c` stamps each written block with a header (magic, CRC-32C, offset) and reads every
// written block back after the job, reporting each that does not check out.
import * as hdr from "hdr-histogram-js";
import { Disk } from "../disk.js";
import { ioSetup, type Iocb } from "../aio.js";
import { mkfs, mount, type Filesystem, type Semantics } from "../fs/filesystem.js";
import type { FileHandle } from "../fs/filehandle.js";
import { O_CREAT, O_DIRECT, O_DSYNC, O_RDWR, O_SYNC } from "../constants.js";
import { crc32c } from "../fs/crc32c.js";
import { DioError } from "../errors.js";
import { Prng } from "../prng.js";
import { RAW_DEVICE, type JobSpec } from "./jobfile.js";

export interface RunOptions {
  semantics: Semantics;
  executor: "inline" | "worker";
  /** Overrides every job's runtime (seconds), as --runtime. */
  runtime?: number;
  /** Overrides every job's randseed, as --seed. */
  seed?: number;
  /** Called after the IO phase, before the verify phase (a test corrupts a block here). */
  beforeVerify?: (env: { disk: Disk; fs: Filesystem | null; fh: FileHandle }) => Promise<void>;
  /** Called now and then while a job runs. */
  onProgress?: (p: { job: string; elapsedMs: number; ios: number; iops: number }) => void;
}

export type Histogram = hdr.Histogram;

export interface DirectionStats {
  ios: number;
  bytes: number;
  /** Submission latency (the submit call itself), nanoseconds. */
  slat: Histogram;
  /** Completion latency (submission returned to completion seen), nanoseconds. */
  clat: Histogram;
  /** Total latency (before submission to completion seen), nanoseconds. */
  lat: Histogram;
}

export interface JobResult {
  spec: JobSpec;
  /** Which instance of numjobs. */
  instance: number;
  runtimeMs: number;
  read: DirectionStats;
  write: DirectionStats;
  /** Syncs issued by fsync= / fdatasync=, with their latency. */
  sync: DirectionStats;
  /** Errors of the IO itself (a negative res). */
  errors: number;
  /** Blocks that failed verification: their offsets and what was wrong. */
  verifyErrors: { offset: number; message: string }[];
  /** Blocks verified. */
  verified: number;
}

function histogram(wasm: boolean): Histogram {
  return hdr.build({ useWebAssembly: wasm, lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: 3 });
}

/** Empty statistics; with `wasm`, histograms of the library's WebAssembly build (a value recorded
 *  in about 25 ns here, against 125 ns for its JavaScript build: three go in per IO), which
 *  releaseResults() frees. */
export function direction(wasm = false): DirectionStats {
  return { ios: 0, bytes: 0, slat: histogram(wasm), clat: histogram(wasm), lat: histogram(wasm) };
}

let hdrWasm: Promise<boolean> | null = null;
/** Loads the histogram library's WebAssembly build once; false where it cannot load. */
function hdrWasmReady(): Promise<boolean> {
  hdrWasm ??= hdr.initWebAssembly().then(() => true, () => false);
  return hdrWasm;
}

/** Frees the histograms of finished jobs (those of the WebAssembly build hold its memory). */
export function releaseResults(results: JobResult[]): void {
  for (const r of results) {
    for (const d of [r.read, r.write, r.sync]) for (const h of [d.slat, d.clat, d.lat]) h.destroy();
  }
}

const VERIFY_MAGIC = 0x564f4944; // "DIOV"
/** magic (4), CRC-32C of the rest (4), offset (8, f64), generation (4), padding (4). */
const VERIFY_HEADER = 24;

/**
 * The data of one write. With verify, the whole block is filled for `offset` with a seeded pattern
 * and gets a checked header (as fio's verify writes fill each block). Without, as fio's default
 * (buffers filled once, then scramble_buffers): the buffer keeps the pattern it was filled with
 * once, and each write stamps its offset and generation into the first 16 bytes.
 */
function writeData(buf: Uint8Array, stamp: DataView | null, offset: number, generation: number, verify: boolean): void {
  if (verify || stamp === null) {
    fillBlock(buf, offset, generation, verify);
    return;
  }
  stamp.setFloat64(0, offset, true);
  stamp.setUint32(8, generation, true);
}

/** The view writeData() stamps a buffer through (made once per buffer), or null when it is too
 *  short to carry a stamp. */
function stampView(buf: Uint8Array): DataView | null {
  return buf.byteLength < 16 ? null : new DataView(buf.buffer, buf.byteOffset, 16);
}

/** Fills a block for `offset` with a seeded pattern and, for verify, a checked header. */
function fillBlock(buf: Uint8Array, offset: number, generation: number, verify: boolean): void {
  let x = (Math.imul(offset / 512 + 1, 0x9e3779b1) ^ Math.imul(generation + 1, 0x85ebca6b)) >>> 0;
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  if (verify && buf.byteLength >= VERIFY_HEADER) {
    const view = new DataView(buf.buffer, buf.byteOffset, VERIFY_HEADER);
    view.setUint32(0, VERIFY_MAGIC, true);
    view.setFloat64(8, offset, true);
    view.setUint32(16, generation, true);
    view.setUint32(20, 0, true);
    view.setUint32(4, crc32c(buf.subarray(8)), true);
  }
}

/** Checks a block's verify header (and, when known, that it is the last write made there);
 *  returns what is wrong, or null. */
function checkBlock(buf: Uint8Array, offset: number, generation?: number): string | null {
  const view = new DataView(buf.buffer, buf.byteOffset, VERIFY_HEADER);
  if (view.getUint32(0, true) !== VERIFY_MAGIC) return `bad magic 0x${view.getUint32(0, true).toString(16)}`;
  if (view.getFloat64(8, true) !== offset) return `header names offset ${view.getFloat64(8, true)}`;
  const want = view.getUint32(4, true);
  const got = crc32c(buf.subarray(8));
  if (want !== got) return `crc32c 0x${got.toString(16).padStart(8, "0")}, header says 0x${want.toString(16).padStart(8, "0")}`;
  const found = view.getUint32(16, true);
  if (generation !== undefined && found !== generation) return `stale data: write #${found} is there, the last write made was #${generation}`;
  return null;
}

/** Every block of [0, blocks) once per pass, in a seeded order: a full-period LCG over the next
 *  power of two, skipping values past the end. */
function randomOrder(blocks: number, seed: number): () => number {
  let m = 1;
  while (m < blocks) m *= 2;
  const a = m >= 4 ? 5 : 1; // a % 4 == 1 and odd c: a full period modulo a power of two
  const c = ((seed * 2 + 1) >>> 0) % Math.max(m, 1) | 1;
  let x = seed % m;
  return () => {
    do x = (a * x + c) % m;
    while (x >= blocks);
    return x;
  };
}

/** A seeded uniform [0, 1) for the read/write mix. */
function mixer(seed: number): () => number {
  const prng = new Prng(seed ^ 0xdeadbeef);
  return () => prng.next();
}

interface Env { disk: Disk; fs: Filesystem | null; fh: FileHandle }

async function prepare(spec: JobSpec, opts: RunOptions): Promise<Env> {
  const raw = spec.filename === RAW_DEVICE;
  const dataBytes = spec.size;
  const diskBytes = raw ? dataBytes : Math.ceil((dataBytes * 1.1 + (8 << 20)) / (1 << 20)) * (1 << 20);
  const arenaBytes = Math.min(64 << 20, Math.max(4 << 20, spec.iodepth * spec.bs * 2 + (2 << 20)));
  const disk = await Disk.create({ size: diskBytes, cacheBytes: 32 << 20, arenaBytes, executor: opts.executor, latency: { readMin: 1, readMax: 1, writeMin: 1, writeMax: 1, flushMin: 1, flushMax: 1 } });
  const flags = O_RDWR | (spec.direct ? O_DIRECT : 0) | (spec.sync === "sync" ? O_SYNC : spec.sync === "dsync" ? O_DSYNC : 0);
  if (raw) return { disk, fs: null, fh: await disk.openBlockDevice(flags) };
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  const fs = await mount(disk, { semantics: opts.semantics });
  // Lay the file out (written whole, synced), so that the timed job finds its blocks allocated:
  // fio does the same, by writing the file for a job that reads it, and for one that only writes
  // it by preallocating it (fallocate=native), which on tmpfs allocates its pages before the job.
  // Our filesystem has no fallocate: writing the file is its nearest equivalent.
  const layout = await fs.open(spec.filename, O_RDWR | O_CREAT | O_DIRECT);
  const chunk = disk.alloc(Math.min(1 << 20, spec.size));
  for (let at = 0; at < spec.size; at += chunk.length) {
    const length = Math.min(chunk.length, spec.size - at);
    for (let b = 0; b < length; b += spec.bs) fillBlock(chunk.subarray(b, b + spec.bs), at + b, 0, spec.verify === "crc32c");
    await layout.write(chunk, 0, length, at);
  }
  disk.free(chunk);
  await layout.close();
  await fs.sync();
  // A layout that filled the cache past what the device releases started the write-back thread:
  // the job is timed once it runs (untimed setup, as fio starts a job's threads before timing).
  await disk.destager?.ready();
  return { disk, fs, fh: await fs.open(spec.filename, flags | O_CREAT) };
}

/** What a synchronous call's stand-in returns when it could not go ahead (never a count). */
const EAGAIN_RESULT = -11;

function isEagain(error: unknown): boolean {
  return error instanceof DioError && error.code === "EAGAIN";
}

/** writeSync(), or EAGAIN_RESULT when it cannot go ahead (the caller then awaits write()). */
function tryWriteSync(fh: FileHandle, buf: Uint8Array, bytes: number, offset: number): number {
  try {
    return fh.writeSync(buf, 0, bytes, offset);
  } catch (error) {
    if (isEagain(error)) return EAGAIN_RESULT;
    throw error;
  }
}

/** readSync(), or EAGAIN_RESULT (see tryWriteSync()). */
function tryReadSync(fh: FileHandle, buf: Uint8Array, bytes: number, offset: number): number {
  try {
    return fh.readSync(buf, 0, bytes, offset);
  } catch (error) {
    if (isEagain(error)) return EAGAIN_RESULT;
    throw error;
  }
}

/** syncSync() or datasyncSync(); false when it cannot go ahead (the caller then awaits). */
function trySync(fh: FileHandle, full: boolean): boolean {
  try {
    if (full) fh.syncSync();
    else fh.datasyncSync();
    return true;
  } catch (error) {
    if (isEagain(error)) return false;
    throw error;
  }
}

/** Runs one instance of a job. */
export async function runJob(spec: JobSpec, instance: number, opts: RunOptions): Promise<JobResult> {
  const wasm = await hdrWasmReady();
  const env = await prepare(spec, opts);
  const { disk, fh } = env;
  const result: JobResult = { spec, instance, runtimeMs: 0, read: direction(wasm), write: direction(wasm), sync: direction(wasm), errors: 0, verifyErrors: [], verified: 0 };
  const blocks = Math.floor(spec.size / spec.bs);
  const seed = spec.randseed + instance;
  const random = spec.rw === "randread" || spec.rw === "randwrite" || spec.rw === "randrw";
  const nextRandom = randomOrder(blocks, seed);
  let nextSeq = 0;
  const nextBlock = () => (random ? nextRandom() : nextSeq++ % blocks);
  const mix = mixer(seed);
  const isRead = (): boolean => {
    if (spec.rw === "read" || spec.rw === "randread") return true;
    if (spec.rw === "write" || spec.rw === "randwrite") return false;
    return mix() * 100 < spec.rwmixread;
  };
  const runtime = spec.runtime;
  const timeLimitMs = runtime > 0 ? runtime * 1000 : Infinity;
  const totalIos = spec.time_based && runtime > 0 ? Infinity : blocks;
  const depth = spec.ioengine === "libaio" ? spec.iodepth : 1;
  /** psync/sync on an O_DIRECT file: the synchronous calls (system calls, as fio's). (libaio at
   *  depth 1 keeps the promise calls, one at a time.) */
  const polled = spec.ioengine !== "libaio" && depth === 1 && spec.direct;
  const written = new Map<number, number>(); // offset -> generation, for verify
  /** Whether a block read back has contents verify can check: a file's were laid out with
   *  headers; the raw device's only once the job wrote them (its other blocks hold whatever the
   *  device held, as fio verifies only what it wrote). */
  const known = (offset: number): boolean => env.fs !== null || written.has(offset);
  let generation = 0;
  let writesSinceSync = 0;
  const buffers = Array.from({ length: depth }, () => disk.alloc(spec.bs));
  const stamps = buffers.map(stampView);
  const verify = spec.verify === "crc32c";
  buffers.forEach((buf, slot) => fillBlock(buf, slot * spec.bs, 0, false));
  const started = performance.now();
  let issued = 0;
  let lastProgress = started;
  const progress = (): void => {
    const now = performance.now();
    if (opts.onProgress !== undefined && now - lastProgress > 250) {
      lastProgress = now;
      const ios = result.read.ios + result.write.ios;
      opts.onProgress({ job: spec.name, elapsedMs: now - started, ios, iops: ios / ((now - started) / 1000) });
    }
  };
  const more = (): boolean => issued < totalIos && performance.now() - started < timeLimitMs;
  const record = (stats: DirectionStats, bytes: number, t0: number, t1: number, t2: number): void => {
    stats.ios++;
    stats.bytes += bytes;
    stats.lat.recordValue(Math.max(1, Math.round((t2 - t0) * 1e6)));
    // Submission latency exists only for an engine that submits and completes apart (fio too).
    if (depth > 1) stats.slat.recordValue(Math.max(1, Math.round((t1 - t0) * 1e6)));
    stats.clat.recordValue(Math.max(1, Math.round((t2 - t1) * 1e6)));
  };
  /** fsync= / fdatasync= given: writes are counted toward a sync (an await per write otherwise
   *  spent on nothing). */
  const syncs = spec.fsync > 0 || spec.fdatasync > 0;
  const syncIfDue = async (): Promise<void> => {
    if (!syncs) return;
    writesSinceSync++;
    const every = spec.fsync > 0 ? spec.fsync : spec.fdatasync;
    if (writesSinceSync < every) return;
    writesSinceSync = 0;
    const t0 = performance.now();
    if (polled && trySync(fh, spec.fsync > 0)) {
      // done, polled
    } else if (spec.fsync > 0) {
      await fh.sync();
    } else {
      await fh.datasync();
    }
    const t1 = performance.now();
    record(result.sync, 0, t0, t0, t1);
  };
  try {
    if (depth === 1) {
      const buf = buffers[0];
      while (more()) {
        const offset = nextBlock() * spec.bs;
        const read = isRead();
        issued++;
        if (!read) writeData(buf, stamps[0], offset, ++generation, verify);
        const t0 = performance.now();
        let res = polled ? (read ? tryReadSync(fh, buf, spec.bs, offset) : tryWriteSync(fh, buf, spec.bs, offset)) : EAGAIN_RESULT;
        if (res === EAGAIN_RESULT) res = read ? (await fh.read(buf, 0, spec.bs, offset)).bytesRead : (await fh.write(buf, 0, spec.bs, offset)).bytesWritten;
        const t1 = performance.now();
        if (res !== spec.bs) result.errors++;
        record(read ? result.read : result.write, Math.max(0, res), t0, t0, t1);
        if (!read) {
          if (verify) written.set(offset, generation);
          if (syncs) await syncIfDue();
        } else if (verify && res === spec.bs && known(offset)) {
          verifyOne(result, buf, offset);
        }
        progress();
      }
    } else {
      const ctx = ioSetup(depth);
      // Per slot (the iocb's data): when it was submitted, and what it was.
      const t0Of = new Float64Array(depth);
      const t1Of = new Float64Array(depth);
      const offsetOf = new Float64Array(depth);
      const generationOf = new Uint32Array(depth);
      const readOf = new Uint8Array(depth);
      let inflight = 0;
      // When the next submission's preparation began: the end of the previous submission, or the
      // moment its batch of completions was reaped (fio stamps an io_u when it takes it, before it
      // prepares it, and again once it is queued; here one clock read serves as both).
      let prepared = performance.now();
      const submit = (slot: number): void => {
        const offset = nextBlock() * spec.bs;
        const read = isRead();
        issued++;
        const buf = buffers[slot];
        const gen = read ? 0 : ++generation;
        if (!read) writeData(buf, stamps[slot], offset, gen, verify);
        const iocb: Iocb = { opcode: read ? "pread" : "pwrite", fh, buf, offset, data: slot };
        ctx.submit([iocb]);
        const queued = performance.now();
        t0Of[slot] = prepared;
        t1Of[slot] = queued;
        prepared = queued;
        offsetOf[slot] = offset;
        generationOf[slot] = gen;
        readOf[slot] = read ? 1 : 0;
        inflight++;
      };
      for (let slot = 0; slot < depth && more(); slot++) submit(slot);
      while (inflight > 0) {
        const events = await ctx.getEvents(1, depth);
        const t2 = performance.now();
        let writesDone = 0;
        for (const event of events) {
          const slot = event.data as number;
          const read = readOf[slot] === 1;
          inflight--;
          if (event.res !== spec.bs) result.errors++;
          record(read ? result.read : result.write, Math.max(0, event.res), t0Of[slot], t1Of[slot], t2);
          if (!read) {
            writesDone++;
            if (verify) written.set(offsetOf[slot], Math.max(written.get(offsetOf[slot]) ?? 0, generationOf[slot]));
          } else if (verify && event.res === spec.bs && known(offsetOf[slot])) {
            verifyOne(result, buffers[slot], offsetOf[slot]);
          }
        }
        // fsync= / fdatasync=: after every N completed writes, a sync (it covers the writes
        // completed so far; those still in flight go on meanwhile).
        if (syncs) for (let i = 0; i < writesDone; i++) await syncIfDue();
        // The clock is read once per batch of completions, as fio checks its runtime once per
        // loop: a run ends at most one batch past its time.
        prepared = performance.now();
        const goOn = prepared - started < timeLimitMs;
        for (const event of events) {
          if (goOn && issued < totalIos) submit(event.data as number);
        }
        progress();
      }
      await ctx.destroy();
    }
    result.runtimeMs = performance.now() - started;
    await opts.beforeVerify?.(env);
    if (verify && written.size > 0) {
      // The verify phase: every written block read back (past the page cache for direct jobs).
      const buf = buffers[0];
      for (const offset of [...written.keys()].sort((a, b) => a - b)) {
        const { bytesRead } = await fh.read(buf, 0, spec.bs, offset);
        if (bytesRead !== spec.bs) {
          result.verifyErrors.push({ offset, message: `read back ${bytesRead} of ${spec.bs} bytes` });
          continue;
        }
        // Two writes to one block in flight at once leave either (the file is smaller than the
        // queue): then only the header is checked, not which write won.
        verifyOne(result, buf, offset, blocks >= depth ? written.get(offset) : undefined);
      }
    }
  } finally {
    await fh.close().catch(() => undefined);
    if (env.fs !== null) await env.fs.unmount().catch(() => undefined);
    await disk.close();
  }
  return result;
}

function verifyOne(result: JobResult, buf: Uint8Array, offset: number, generation?: number): void {
  result.verified++;
  const problem = checkBlock(buf, offset, generation);
  if (problem !== null) result.verifyErrors.push({ offset, message: problem });
}

/** Runs every job of a list, each instance in turn. */
export async function runJobs(specs: JobSpec[], opts: RunOptions): Promise<JobResult[]> {
  const results: JobResult[] = [];
  for (const given of specs) {
    // The command line's --runtime and --seed override the file, and the report says so.
    const spec = { ...given, runtime: opts.runtime ?? given.runtime, randseed: opts.seed ?? given.randseed };
    for (let instance = 0; instance < spec.numjobs; instance++) results.push(await runJob(spec, instance, opts));
  }
  return results;
}
