// Loads the AssemblyScript core over a disk's shared memory. The only module that touches
// @assemblyscript/loader (deprecated upstream), so it can be replaced in one place. Checks at load
// time that the core's layout matches host/layout.ts, naming the first field that differs.
import * as loader from "@assemblyscript/loader";
import { LAYOUT_BASE, LAYOUT_FIELDS } from "./layout.js";

/** The core's exports, typed. Numbers cross as u32/i32; booleans as 0/1. */
export interface CoreExports {
  layout_field_count(): number;
  layout_value(index: number): number;
  core_init(): number;
  core_attach(): number;
  split_bytes(sector: number, index: number, count: number, done: number, bytes: number, flags: number): number;
  max_io_bytes(sector: number): number;
  blk_split(op: number, flags: number, sector: number, index: number, count: number, done: number, bytes: number, firstSlot: number): number;
  blk_split_tail_status(): number;
  dev_write(sector: number, sectors: number, index: number, done: number, fua: number): number;
  dev_read(sector: number, sectors: number, index: number, done: number): number;
  dev_flush_mark(): number;
  dev_flush_marks(count: number): number;
  dev_flush_commit(mark: number): void;
  dev_destage_released(budget: number): number;
  dev_destage_claimed(budget: number): number;
  dev_destage_abandon(): void;
  dev_share_take(): number;
  /** PENDING_RELEASED (1) | PENDING_SHARE (2). */
  dev_destage_pending(): number;
  dev_crash_cache(seed: number, torn: number): void;
  dev_crash_inflight(sector: number, sectors: number, index: number, done: number, seed: number, torn: number): number;
  blk_run_batch(first: number, count: number, pieceSlot: number): number;
  bench_copy(dst: number, src: number, bytes: number, count: number, wrapBytes: number): number;
  fs_attach(): number;
  fs_reset(reserved: number): number;
  fs_inode_init(ino: number): number;
  fs_inode_release(ino: number): number;
  fs_load_extent(ino: number, fileBlock: number, diskBlock: number, length: number): number;
  fs_get_block(ino: number, fileBlock: number, maxBlocks: number, create: number): number;
  fs_map_disk_block(): number;
  fs_map_block_count(): number;
  fs_map_flags(): number;
  fs_truncate(ino: number, fromBlock: number): number;
  fs_free_run(diskBlock: number, length: number): number;
  fs_mapped_blocks(ino: number): number;
  fs_range_mapped(ino: number, firstBlock: number, endBlock: number): number;
  dio_outcome(): number;
  dio_map(op: number, ino: number, dioBits: number, fsBits: number, iovCount: number, startBlock: number, iSize: number, skipHoles: number, builder: number): number;
  dio_bio_count(): number;
  dio_result_bytes(): number;
  dio_stop(): number;
  dio_map_calls(): number;
  dio_new_blocks(): number;
}

const modulePromises = new Map<string, Promise<WebAssembly.Module>>();

/** The core built for shared memory (threads), and the one for a plain memory (no isolation). */
const CORE_FILES = { shared: "core.wasm", unshared: "core.unshared.wasm" } as const;

async function readCoreBytes(file: string): Promise<Uint8Array> {
  const url = new URL(`../../build/${file}`, import.meta.url);
  if (url.protocol === "file:") {
    const { readFile } = await import("node:fs/promises");
    try {
      return await readFile(url);
    } catch (error) {
      throw new Error(`dioemu: cannot read the core at ${url.pathname}; run "npm run build" first (${(error as Error).message})`);
    }
  }
  const response = await fetch(url);
  if (!response.ok) throw new Error(`dioemu: cannot fetch the core at ${url} (${response.status})`);
  return new Uint8Array(await response.arrayBuffer());
}

/** The compiled core, compiled once per process (or worker) and shared by every disk. */
export function loadCoreModule(shared = true): Promise<WebAssembly.Module> {
  const file = shared ? CORE_FILES.shared : CORE_FILES.unshared;
  let promise = modulePromises.get(file);
  if (promise === undefined) {
    promise = readCoreBytes(file).then((bytes) => WebAssembly.compile(bytes as BufferSource));
    modulePromises.set(file, promise);
  }
  return promise;
}

/**
 * Compares the core's layout fields with the host's. Throws an Error naming the first field that
 * differs: a stale build of one side must never misread the shared memory.
 */
export function checkLayout(core: Pick<CoreExports, "layout_field_count" | "layout_value">): void {
  const count = core.layout_field_count();
  if (count !== LAYOUT_FIELDS.length) {
    throw new Error(`dioemu: core layout has ${count} fields, host expects ${LAYOUT_FIELDS.length}; rebuild with "npm run build"`);
  }
  LAYOUT_FIELDS.forEach(([name, expected], index) => {
    const actual = core.layout_value(index) >>> 0;
    const ok = expected === "below-base" ? actual <= LAYOUT_BASE : actual === expected;
    if (!ok) {
      const want = expected === "below-base" ? `at most ${LAYOUT_BASE}` : String(expected);
      throw new Error(`dioemu: shared-memory layout mismatch in field ${name}: core has ${actual}, host expects ${want}; rebuild with "npm run build"`);
    }
  });
}

/** Instantiates the core over `memory` (shared or not) and checks its layout. */
export async function instantiateCore(memory: WebAssembly.Memory): Promise<CoreExports> {
  const shared = typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer;
  const module = await loadCoreModule(shared);
  const { exports } = loader.instantiateSync<Record<string, unknown>>(module, {
    env: {
      memory,
      abort(_message: number, _file: number, line: number, column: number) {
        throw new Error(`dioemu core aborted at line ${line}:${column}`);
      },
    },
  });
  // The loader wraps every export to count optional arguments (a rest-args array per call); the
  // core has none, so the raw wasm functions are called directly on every path.
  const raw: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(exports)) {
    raw[name] = typeof value === "function" ? ((value as { original?: unknown }).original ?? value) : value;
  }
  const core = raw as unknown as CoreExports;
  checkLayout(core);
  return core;
}
