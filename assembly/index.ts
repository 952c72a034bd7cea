// The core's exports: the only functions the host calls. Built with --runtime stub; nothing here
// allocates, so one instance per thread can run over the same shared memory.
import {
  BATCH_BVEC_COUNT, BATCH_BVEC_INDEX, BATCH_BYTES, BATCH_FLAGS, BATCH_OP, BATCH_SECTOR,
  BATCH_SIZE, BATCH_STATUS, BIO_FUA, BIO_PREFLUSH, CTRL_MAGIC, CTRL_VERSION, EINVAL, FEATURE_FUA,
  FEATURE_WRITE_CACHE, LAYOUT_MAGIC, LAYOUT_VERSION, OP_FLUSH, OP_WRITE, PIECE_BVEC_DONE,
  PIECE_BVEC_INDEX, PIECE_SECTOR, PIECE_SECTORS, PIECE_SIZE, layoutValue, LAYOUT_FIELD_COUNT,
} from "./layout";
import * as state from "./state";
import { bioFitsOnePage, splitBytes as splitDecision, maxIoBytes } from "./split";
import { splitBio, splitTailStatus } from "./blk";
import * as fs from "./fs";
import * as dio from "./dio";
import {
  crashCache, crashInflightWrite, destageAbandon, destageClaimed, destagePending, destageReleased, deviceRead, deviceReset, deviceWrite, flushCommit, flushMark, flushMarks, shareTake,
} from "./device";

/** Number of layout fields the host compares. */
export function layout_field_count(): i32 {
  return LAYOUT_FIELD_COUNT;
}
/** The core's value of layout field `index` (see host/layout.ts for the names). */
export function layout_value(index: i32): u32 {
  return layoutValue(index);
}

/** First-time setup by the thread that created the disk: stamps the block and empties the cache. */
export function core_init(): i32 {
  store<u32>(state.ctrlAddr(CTRL_MAGIC), LAYOUT_MAGIC);
  store<u32>(state.ctrlAddr(CTRL_VERSION), LAYOUT_VERSION);
  const status = state.attach();
  if (status != 0) return status;
  deviceReset();
  return 0;
}
/** Every other instance (one per thread): read the control block. Returns 0 or -EINVAL. */
export function core_attach(): i32 {
  return state.attach();
}

/** The split decision alone, for tests: 0, the front piece in bytes, or -errno, for the bio
 *  whose bvec table is [index, index + count) and whose data left starts `done` into `index`. */
export function split_bytes(sector: u32, index: u32, count: u32, done: u32, bytes: u32, flags: u32): i32 {
  return splitDecision(sector, index, done, bytes, flags, bioFitsOnePage(index, count));
}
/** get_max_io_size() in bytes, for tests. */
export function max_io_bytes(sector: u32): u32 {
  return maxIoBytes(sector);
}
/** Splits a bio into the piece table; see blk.ts splitBio(). */
export function blk_split(op: u32, flags: u32, sector: u32, index: u32, count: u32, done: u32, bytes: u32, firstSlot: u32): i32 {
  return splitBio(op, flags, sector, index, count, done, bytes, firstSlot);
}

/** After blk_split(): -errno of a remainder that could not be split (its pieces went out), or 0. */
export function blk_split_tail_status(): i32 {
  return splitTailStatus;
}

export function dev_write(sector: u32, sectors: u32, index: u32, done: u32, fua: bool): i32 {
  return deviceWrite(sector, sectors, index, done, fua);
}
export function dev_read(sector: u32, sectors: u32, index: u32, done: u32): i32 {
  return deviceRead(sector, sectors, index, done);
}
export function dev_flush_mark(): u32 {
  return flushMark();
}
/** `count` flushes issued back to back (one mark, counted `count` times). */
export function dev_flush_marks(count: u32): u32 {
  return flushMarks(count);
}
export function dev_flush_commit(mark: u32): void {
  flushCommit(mark);
}
/** Writes back up to `budget` released cache entries; returns how many remain released. */
export function dev_destage_released(budget: u32): u32 {
  return destageReleased(budget);
}
/** The destager thread's write-back of up to `budget` released entries, copied outside the lock. */
export function dev_destage_claimed(budget: u32): u32 {
  return destageClaimed(budget);
}
/** The destager thread: joins a posted share of a large media write; 1 when it did. */
export function dev_share_take(): bool {
  return shareTake();
}
/** The destager thread's work waiting, without the lock: PENDING_RELEASED | PENDING_SHARE bits. */
export function dev_destage_pending(): u32 {
  return destagePending();
}
/** The destager thread died: a claim it left is given up (its entries are written back again). */
export function dev_destage_abandon(): void {
  destageAbandon();
}
export function dev_crash_cache(seed: u32, torn: bool): void {
  crashCache(seed, torn);
}
export function dev_crash_inflight(sector: u32, sectors: u32, index: u32, done: u32, seed: u32, torn: bool): i32 {
  return crashInflightWrite(sector, sectors, index, done, seed, torn);
}

/** Runs one bio of the batch table to completion: split, then each piece at the device. */
function runBatchBio(record: usize, pieceSlot: u32): i32 {
  const op = load<u32>(record + BATCH_OP);
  const flags = load<u32>(record + BATCH_FLAGS);
  const hasCache = (state.features & FEATURE_WRITE_CACHE) != 0;
  if (op == OP_FLUSH) {
    if (hasCache) flushCommit(flushMark());
    return 0;
  }
  if (op == OP_WRITE && hasCache && (flags & BIO_PREFLUSH) != 0) flushCommit(flushMark());
  const pieces = splitBio(op, flags, load<u32>(record + BATCH_SECTOR), load<u32>(record + BATCH_BVEC_INDEX),
    load<u32>(record + BATCH_BVEC_COUNT), 0, load<u32>(record + BATCH_BYTES), pieceSlot);
  if (pieces < 0) return pieces;
  const tailStatus = splitTailStatus;
  const fua = (flags & BIO_FUA) != 0 && hasCache;
  const fuaNative = fua && (state.features & FEATURE_FUA) != 0;
  let status: i32 = 0;
  for (let k: u32 = 0; k < <u32>pieces; k++) {
    const piece = <usize>(state.pieceBase + (pieceSlot + k) * PIECE_SIZE);
    const sector = load<u32>(piece + PIECE_SECTOR);
    const sectors = load<u32>(piece + PIECE_SECTORS);
    const index = load<u32>(piece + PIECE_BVEC_INDEX);
    const done = load<u32>(piece + PIECE_BVEC_DONE);
    const result = op == OP_WRITE ? deviceWrite(sector, sectors, index, done, fuaNative) : deviceRead(sector, sectors, index, done);
    if (status == 0) status = result;
  }
  // A FUA write on a cache without FUA support is a write followed by a flush.
  if (op == OP_WRITE && fua && !fuaNative && status == 0) flushCommit(flushMark());
  return status != 0 ? status : tailStatus;
}

/**
 * Runs `count` bios from the batch table synchronously (split, device, status), using piece
 * slots from `pieceSlot`. The benchmark's and bulk paths' entry: no host call per bio.
 * Returns the number of bios that failed.
 */
export function blk_run_batch(first: u32, count: u32, pieceSlot: u32): i32 {
  if (<u64>first + count > <u64>state.batchCapacity) return -EINVAL;
  let failed: i32 = 0;
  for (let k: u32 = 0; k < count; k++) {
    const record = <usize>(state.batchBase + (first + k) * BATCH_SIZE);
    const status = runBatchBio(record, pieceSlot);
    store<i32>(record + BATCH_STATUS, status);
    if (status != 0) failed++;
  }
  return failed;
}

/** `count` copies of `bytes` bytes from `src` to consecutive destinations from `dst`, wrapping
 *  every `wrapBytes`: the memory.copy baseline the benchmarks compare the write path with. */
export function bench_copy(dst: u32, src: u32, bytes: u32, count: u32, wrapBytes: u32): i32 {
  // Both ranges must lie in the IO-buffer arena.
  if (src < state.arenaBase || <u64>src + bytes > <u64>state.arenaEnd) return -EINVAL;
  if (bytes > wrapBytes || dst < state.arenaBase || <u64>dst + wrapBytes > <u64>state.arenaEnd) return -EINVAL;
  let offset: u32 = 0;
  for (let k: u32 = 0; k < count; k++) {
    memory.copy(<usize>(dst + offset), <usize>src, bytes);
    offset += bytes;
    if (offset + bytes > wrapBytes) offset = 0;
  }
  return 0;
}

// ---- filesystem mapping (assembly/fs.ts) ---------------------------------------------------------

/** Reads the filesystem regions from the control block; 0 or -EINVAL. */
export function fs_attach(): i32 {
  return fs.fsAttach();
}
/** Empties the mapping state; blocks [0, reserved) are in use (superblocks, metadata areas). */
export function fs_reset(reserved: u32): i32 {
  return fs.fsReset(reserved);
}
export function fs_inode_init(ino: u32): i32 {
  return fs.fsInodeInit(ino);
}
export function fs_inode_release(ino: u32): i32 {
  return fs.fsInodeRelease(ino);
}
export function fs_load_extent(ino: u32, fileBlock: u32, diskBlock: u32, length: u32): i32 {
  return fs.fsLoadExtent(ino, fileBlock, diskBlock, length);
}
/** get_block (spec 2.7); the answer is read with fs_map_disk_block/_block_count/_flags. */
export function fs_get_block(ino: u32, fileBlock: u32, maxBlocks: u32, create: bool): i32 {
  return fs.fsGetBlock(ino, fileBlock, maxBlocks, create);
}
/** 1 when every block of [firstBlock, endBlock) of `ino` is mapped, 0 at a hole (no allocation). */
export function fs_range_mapped(ino: u32, firstBlock: u32, endBlock: u32): i32 {
  return fs.fsRangeMapped(ino, firstBlock, endBlock);
}
export function fs_map_disk_block(): u32 {
  return fs.mapDiskBlock;
}
export function fs_map_block_count(): u32 {
  return fs.mapBlockCount;
}
export function fs_map_flags(): u32 {
  return fs.mapFlags;
}
export function fs_truncate(ino: u32, fromBlock: u32): i32 {
  return fs.fsTruncate(ino, fromBlock);
}
export function fs_free_run(diskBlock: u32, length: u32): i32 {
  return fs.fsFreeRun(diskBlock, length);
}
export function fs_mapped_blocks(ino: u32): u32 {
  return fs.fsMappedBlocks(ino);
}

// ---- direct IO (assembly/dio.ts) -----------------------------------------------------------------

/** Maps a direct-IO request and builds its bios; see dio.ts dioMap(). */
export function dio_map(op: u32, ino: u32, dioBits: u32, fsBits: u32, iovCount: u32, startBlock: f64, iSize: f64, skipHoles: u32, builder: u32): i32 {
  return dio.dioMap(op, ino, dioBits, fsBits, iovCount, startBlock, iSize, skipHoles, builder);
}
export function dio_bio_count(): u32 {
  return dio.dioBioCount;
}
export function dio_result_bytes(): f64 {
  return <f64>dio.dioResultBytes;
}
/** 0 (the whole request), -ENOTBLK (a write reached a hole inside i_size), 1 (a read reached EOF). */
export function dio_stop(): i32 {
  return dio.dioStop;
}
export function dio_map_calls(): u32 {
  return dio.dioMapCalls;
}
/**
 * The mapping loop's outcome in one number (one call from the host instead of four): result bytes
 * * 2^22 + bio count * 2^6 + (stop + 16) * 2 + (new blocks ? 1 : 0). Exact: the result is at most
 * a pass (2^24 bytes), the bio count below 2^16, stop in -15..1.
 */
export function dio_outcome(): f64 {
  const low: u32 = (dio.dioBioCount << 6) | (<u32>(dio.dioStop + 16) << 1) | (dio.dioNewBlocks ? 1 : 0);
  return <f64>dio.dioResultBytes * 4194304.0 + <f64>low;
}
export function dio_new_blocks(): bool {
  return dio.dioNewBlocks;
}
