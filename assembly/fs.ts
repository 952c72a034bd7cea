// The filesystem's block mapping: per-inode sorted extent arrays in a compacting pool, a free-space
// bitmap, and get_block() (spec 2.7): map a file block range to a disk run, or a hole, allocating
// contiguous runs with create. see: fs/direct-io.c get_more_blocks() for how it is called, and
// fs/ext4/extents.c for the shape of an extent map.
//
//   inode slot (16 B)                 extent (12 B)                      bitmap
//   +--------+-------+-------+-----+  +-----------+-----------+--------+  1 bit per fs block,
//   | start  | count | cap   | in  |  | fileBlock | diskBlock | length |  1 = in use (or freed and
//   | (index)|       |       | use |  +-----------+-----------+--------+  waiting for a commit)
//   +--------+-------+-------+-----+
import {
  CTRL_FS_INODE_BASE, CTRL_FS_INODE_CAPACITY, CTRL_FS_EXTENT_BASE, CTRL_FS_EXTENT_CAPACITY,
  CTRL_FS_EXTENT_TOP, CTRL_FS_BITMAP_BASE, CTRL_FS_BLOCK_COUNT, CTRL_FS_FREE_BLOCKS,
  CTRL_FS_SCRATCH_BASE, CTRL_FS_SCRATCH_CAPACITY, CTRL_FS_ALLOC_HINT, FS_INODE_START, FS_INODE_COUNT,
  FS_INODE_CAPACITY, FS_INODE_FLAGS, FS_INODE_SIZE, FS_EXTENT_FILE, FS_EXTENT_DISK,
  FS_EXTENT_LENGTH, FS_EXTENT_SIZE, MAP_MAPPED, MAP_NEW, MAP_BOUNDARY, EINVAL, ENOSPC, EUCLEAN,
} from "./layout";
import { ctrlAddr, ctrlLoad } from "./state";

let inodeBase: u32 = 0;
let inodeCapacity: u32 = 0;
let extentBase: u32 = 0;
let extentCapacity: u32 = 0;
let bitmapBase: u32 = 0;
let blockCount: u32 = 0;
let scratchBase: u32 = 0;
let scratchCapacity: u32 = 0;

/** get_block()'s answer, per thread: the disk run, its length in blocks, MAP_* flags. */
export let mapDiskBlock: u32 = 0;
export let mapBlockCount: u32 = 0;
export let mapFlags: u32 = 0;

/** Reads the filesystem's region bases from the control block (each thread, after mount). */
export function fsAttach(): i32 {
  inodeBase = ctrlLoad(CTRL_FS_INODE_BASE);
  inodeCapacity = ctrlLoad(CTRL_FS_INODE_CAPACITY);
  extentBase = ctrlLoad(CTRL_FS_EXTENT_BASE);
  extentCapacity = ctrlLoad(CTRL_FS_EXTENT_CAPACITY);
  bitmapBase = ctrlLoad(CTRL_FS_BITMAP_BASE);
  blockCount = ctrlLoad(CTRL_FS_BLOCK_COUNT);
  scratchBase = ctrlLoad(CTRL_FS_SCRATCH_BASE);
  scratchCapacity = ctrlLoad(CTRL_FS_SCRATCH_CAPACITY);
  const memoryBytes = <u64>memory.size() << 16;
  if (<u64>scratchCapacity * FS_EXTENT_SIZE < <u64>inodeCapacity * 8) return -EINVAL;
  if (<u64>inodeBase + <u64>inodeCapacity * FS_INODE_SIZE > memoryBytes) return -EINVAL;
  if (<u64>extentBase + <u64>extentCapacity * FS_EXTENT_SIZE > memoryBytes) return -EINVAL;
  if (<u64>bitmapBase + ((<u64>blockCount + 31) >> 5) * 4 > memoryBytes) return -EINVAL;
  if (<u64>scratchBase + <u64>scratchCapacity * FS_EXTENT_SIZE > memoryBytes) return -EINVAL;
  return 0;
}

// ---- inode slots and extents -------------------------------------------------------------------

@inline function slotAddr(ino: u32): usize {
  return <usize>(inodeBase + ino * FS_INODE_SIZE);
}
@inline function extentAddr(index: u32): usize {
  return <usize>(extentBase + index * FS_EXTENT_SIZE);
}
@inline function inoValid(ino: u32): bool {
  return ino != 0 && ino < inodeCapacity;
}
@inline function extStart(ino: u32): u32 { return load<u32>(slotAddr(ino) + FS_INODE_START); }
@inline function extCount(ino: u32): u32 { return load<u32>(slotAddr(ino) + FS_INODE_COUNT); }
@inline function extFile(index: u32): u32 { return load<u32>(extentAddr(index) + FS_EXTENT_FILE); }
@inline function extDisk(index: u32): u32 { return load<u32>(extentAddr(index) + FS_EXTENT_DISK); }
@inline function extLength(index: u32): u32 { return load<u32>(extentAddr(index) + FS_EXTENT_LENGTH); }

function setExtent(index: u32, fileBlock: u32, diskBlock: u32, length: u32): void {
  store<u32>(extentAddr(index) + FS_EXTENT_FILE, fileBlock);
  store<u32>(extentAddr(index) + FS_EXTENT_DISK, diskBlock);
  store<u32>(extentAddr(index) + FS_EXTENT_LENGTH, length);
}

@inline function keyAddr(i: u32): usize {
  return <usize>(scratchBase + (i << 3));
}

/** Sorts the u64 keys [0, n) of the scratch area in place (heap sort: bounded, no allocation). */
function sortKeys(n: u32): void {
  // see: any textbook heap sort; sift-down with an explicit bound.
  for (let i: i32 = <i32>(n >>> 1) - 1; i >= 0; i--) siftDown(<u32>i, n);
  for (let end = n; end > 1; end--) {
    const top = load<u64>(keyAddr(0));
    store<u64>(keyAddr(0), load<u64>(keyAddr(end - 1)));
    store<u64>(keyAddr(end - 1), top);
    siftDown(0, end - 1);
  }
}
function siftDown(root: u32, n: u32): void {
  let i = root;
  while (true) {
    const left: u32 = 2 * i + 1;
    if (left >= n) return;
    let child = left;
    if (left + 1 < n && load<u64>(keyAddr(left + 1)) > load<u64>(keyAddr(left))) child = left + 1;
    if (load<u64>(keyAddr(child)) <= load<u64>(keyAddr(i))) return;
    const t = load<u64>(keyAddr(i));
    store<u64>(keyAddr(i), load<u64>(keyAddr(child)));
    store<u64>(keyAddr(child), t);
    i = child;
  }
}

/**
 * Slides every inode's extents down to the bottom of the pool, in address order, trimming each
 * array to its count. Uses the scratch area (at least 8 bytes per inode) to sort arrays by start.
 */
function compactExtents(): void {
  let live: u32 = 0;
  for (let ino: u32 = 1; ino < inodeCapacity; ino++) {
    if (load<u32>(slotAddr(ino) + FS_INODE_FLAGS) == 0) continue;
    if (extCount(ino) == 0) {
      store<u32>(slotAddr(ino) + FS_INODE_START, 0);
      store<u32>(slotAddr(ino) + FS_INODE_CAPACITY, 0);
      continue;
    }
    store<u64>(keyAddr(live), (<u64>extStart(ino) << 32) | <u64>ino);
    live++;
  }
  sortKeys(live);
  let top: u32 = 0;
  for (let i: u32 = 0; i < live; i++) {
    const ino = <u32>(load<u64>(keyAddr(i)) & 0xffffffff);
    const start = extStart(ino);
    const count = extCount(ino);
    // Arrays never overlap and move only downwards, so memory.copy (a memmove) is safe.
    if (start != top) memory.copy(extentAddr(top), extentAddr(start), <usize>count * FS_EXTENT_SIZE);
    store<u32>(slotAddr(ino) + FS_INODE_START, top);
    store<u32>(slotAddr(ino) + FS_INODE_CAPACITY, count);
    top += count;
  }
  store<u32>(ctrlAddr(CTRL_FS_EXTENT_TOP), top);
}

/** Makes room for one more extent in `ino`'s array. Returns false when the pool is full. */
function reserveExtent(ino: u32): bool {
  const count = extCount(ino);
  const capacity = load<u32>(slotAddr(ino) + FS_INODE_CAPACITY);
  if (count < capacity) return true;
  let top = load<u32>(ctrlAddr(CTRL_FS_EXTENT_TOP));
  const start = extStart(ino);
  const grow = capacity < 4 ? 4 : capacity;
  // The array at the top of the pool grows in place.
  if (capacity != 0 && start + capacity == top && top + grow <= extentCapacity) {
    store<u32>(slotAddr(ino) + FS_INODE_CAPACITY, capacity + grow);
    store<u32>(ctrlAddr(CTRL_FS_EXTENT_TOP), top + grow);
    return true;
  }
  if (top + capacity + grow > extentCapacity) {
    compactExtents();
    top = load<u32>(ctrlAddr(CTRL_FS_EXTENT_TOP));
    const compacted = load<u32>(slotAddr(ino) + FS_INODE_CAPACITY);
    // After compaction the array may be the top one: then it grows in place.
    if (extStart(ino) + compacted == top && top + grow <= extentCapacity) {
      store<u32>(slotAddr(ino) + FS_INODE_CAPACITY, compacted + grow);
      store<u32>(ctrlAddr(CTRL_FS_EXTENT_TOP), top + grow);
      return true;
    }
    if (top + compacted + grow > extentCapacity) return false;
  }
  const oldStart = extStart(ino);
  if (count != 0) memory.copy(extentAddr(top), extentAddr(oldStart), <usize>count * FS_EXTENT_SIZE);
  store<u32>(slotAddr(ino) + FS_INODE_START, top);
  store<u32>(slotAddr(ino) + FS_INODE_CAPACITY, count + grow);
  store<u32>(ctrlAddr(CTRL_FS_EXTENT_TOP), top + count + grow);
  return true;
}

/** Index (relative to the inode's array) of the last extent starting at or before `fileBlock`, or -1. */
function findExtent(ino: u32, fileBlock: u32): i32 {
  const start = extStart(ino);
  let lo: i32 = 0;
  let hi: i32 = <i32>extCount(ino) - 1;
  let found: i32 = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (extFile(start + <u32>mid) <= fileBlock) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

// ---- bitmap -------------------------------------------------------------------------------------

@inline function bitWordAddr(block: u32): usize {
  return <usize>(bitmapBase + ((block >>> 5) << 2));
}
@inline function blockUsed(block: u32): bool {
  return (load<u32>(bitWordAddr(block)) & (1 << (block & 31))) != 0;
}
function markRun(start: u32, length: u32, used: bool): void {
  for (let b = start; b < start + length; b++) {
    const addr = bitWordAddr(b);
    const bit: u32 = 1 << (b & 31);
    store<u32>(addr, used ? load<u32>(addr) | bit : load<u32>(addr) & ~bit);
  }
  const free = load<u32>(ctrlAddr(CTRL_FS_FREE_BLOCKS));
  store<u32>(ctrlAddr(CTRL_FS_FREE_BLOCKS), used ? free - length : free + length);
}

/** The first free block at or after `from` (wrapping to 0), or 0xffffffff when none is free. */
function nextFreeBlock(from: u32): u32 {
  if (load<u32>(ctrlAddr(CTRL_FS_FREE_BLOCKS)) == 0) return 0xffffffff;
  const words = (blockCount + 31) >>> 5;
  let block = from < blockCount ? from : 0;
  for (let scanned: u32 = 0; scanned <= words; scanned++) {
    const word = load<u32>(bitWordAddr(block)) | ((1 << (block & 31)) - 1);
    if (word != 0xffffffff) {
      const found = (block & ~31) + <u32>ctz(~word);
      if (found < blockCount) return found;
    }
    block = (block & ~31) + 32;
    if (block >= blockCount) block = 0;
  }
  return 0xffffffff;
}

/**
 * Allocates up to `want` contiguous blocks, at `goal` when it is free (so a file written in order
 * stays contiguous), else at the next free block. Sets mapDiskBlock / mapBlockCount; false when the
 * filesystem is full.
 */
function allocateRun(goal: u32, want: u32): bool {
  const start = nextFreeBlock(goal);
  if (start == 0xffffffff) return false;
  let length: u32 = 1;
  while (length < want && start + length < blockCount && !blockUsed(start + length)) length++;
  markRun(start, length, true);
  mapDiskBlock = start;
  mapBlockCount = length;
  return true;
}

// ---- the exported operations ---------------------------------------------------------------------

/** Empties the mapping state: every inode slot free, no extents, blocks [0, reserved) in use. */
export function fsReset(reserved: u32): i32 {
  if (reserved > blockCount) return -EINVAL;
  memory.fill(<usize>inodeBase, 0, <usize>inodeCapacity * FS_INODE_SIZE);
  memory.fill(<usize>bitmapBase, 0, <usize>(((blockCount + 31) >>> 5) << 2));
  store<u32>(ctrlAddr(CTRL_FS_EXTENT_TOP), 0);
  store<u32>(ctrlAddr(CTRL_FS_FREE_BLOCKS), blockCount);
  store<u32>(ctrlAddr(CTRL_FS_ALLOC_HINT), reserved);
  // Bits past the last block stay set so that no scan ever hands them out.
  for (let b = blockCount; b < ((blockCount + 31) & ~31); b++) {
    store<u32>(bitWordAddr(b), load<u32>(bitWordAddr(b)) | (1 << (b & 31)));
  }
  if (reserved != 0) markRun(0, reserved, true);
  return 0;
}

/** Marks inode `ino` in use with no extents. */
export function fsInodeInit(ino: u32): i32 {
  if (!inoValid(ino)) return -EINVAL;
  if (load<u32>(slotAddr(ino) + FS_INODE_FLAGS) != 0) return -EINVAL;
  store<u32>(slotAddr(ino) + FS_INODE_START, 0);
  store<u32>(slotAddr(ino) + FS_INODE_COUNT, 0);
  store<u32>(slotAddr(ino) + FS_INODE_CAPACITY, 0);
  store<u32>(slotAddr(ino) + FS_INODE_FLAGS, 1);
  return 0;
}

/** Releases inode `ino`'s slot; its extents must have been truncated away first. */
export function fsInodeRelease(ino: u32): i32 {
  if (!inoValid(ino) || extCount(ino) != 0) return -EINVAL;
  store<u32>(slotAddr(ino) + FS_INODE_FLAGS, 0);
  store<u32>(slotAddr(ino) + FS_INODE_CAPACITY, 0);
  return 0;
}

/**
 * Appends an extent loaded from disk (at mount): it must come after the inode's last extent, lie
 * inside the filesystem and use only free blocks. Returns 0, -EUCLEAN for an inconsistent map,
 * -ENOSPC when the pool is full.
 */
export function fsLoadExtent(ino: u32, fileBlock: u32, diskBlock: u32, length: u32): i32 {
  if (!inoValid(ino) || load<u32>(slotAddr(ino) + FS_INODE_FLAGS) == 0) return -EINVAL;
  if (length == 0 || <u64>diskBlock + length > <u64>blockCount || <u64>fileBlock + length > 0xffffffff) return -EUCLEAN;
  const count = extCount(ino);
  if (count != 0) {
    const last = extStart(ino) + count - 1;
    if (<u64>extFile(last) + extLength(last) > <u64>fileBlock) return -EUCLEAN;
  }
  for (let b = diskBlock; b < diskBlock + length; b++) if (blockUsed(b)) return -EUCLEAN;
  if (!reserveExtent(ino)) return -ENOSPC;
  setExtent(extStart(ino) + count, fileBlock, diskBlock, length);
  store<u32>(slotAddr(ino) + FS_INODE_COUNT, count + 1);
  markRun(diskBlock, length, true);
  return 0;
}

/** Inserts a run at position `at` of `ino`'s array, merging with its neighbours when contiguous. */
function insertExtent(ino: u32, at: u32, fileBlock: u32, diskBlock: u32, length: u32): bool {
  const count = extCount(ino);
  if (at > 0) {
    const prev = extStart(ino) + at - 1;
    if (extFile(prev) + extLength(prev) == fileBlock && extDisk(prev) + extLength(prev) == diskBlock) {
      store<u32>(extentAddr(prev) + FS_EXTENT_LENGTH, extLength(prev) + length);
      return true;
    }
  }
  if (!reserveExtent(ino)) return false;
  const start = extStart(ino);
  if (at < count) memory.copy(extentAddr(start + at + 1), extentAddr(start + at), <usize>(count - at) * FS_EXTENT_SIZE);
  setExtent(start + at, fileBlock, diskBlock, length);
  store<u32>(slotAddr(ino) + FS_INODE_COUNT, count + 1);
  return true;
}

/**
 * Whether every file block in [firstBlock, endBlock) of `ino` is mapped (a lookup, nothing
 * allocated): 1, or 0 at the first hole; -EINVAL for a bad inode. Extents are sorted and do not
 * overlap, so the run from firstBlock is walked extent by extent while each starts where the last
 * ended.
 */
export function fsRangeMapped(ino: u32, firstBlock: u32, endBlock: u32): i32 {
  if (!inoValid(ino) || load<u32>(slotAddr(ino) + FS_INODE_FLAGS) == 0) return -EINVAL;
  if (endBlock <= firstBlock) return 1;
  const start = extStart(ino);
  const count = extCount(ino);
  let found = findExtent(ino, firstBlock);
  if (found < 0) return 0;
  let covered = firstBlock;
  for (let k = <u32>found; k < count; k++) {
    const e = start + k;
    if (extFile(e) > covered) return 0; // a hole before this extent
    const end = extFile(e) + extLength(e);
    if (end > covered) covered = end;
    if (covered >= endBlock) return 1;
  }
  return 0;
}

/**
 * get_block (spec 2.7): maps file blocks [fileBlock, fileBlock + maxBlocks) of `ino` from the start.
 * Mapped: the disk run that starts there, up to the end of its extent (MAP_BOUNDARY when the run
 * stops at the extent's end, so the next block needs another lookup). A hole without `create`:
 * mapBlockCount = the hole's length up to maxBlocks, flags 0. A hole with `create`: allocates a
 * contiguous run (MAP_NEW), as long as the hole and the free space allow. Returns 0 or -errno.
 */
export function fsGetBlock(ino: u32, fileBlock: u32, maxBlocks: u32, create: bool): i32 {
  if (!inoValid(ino) || load<u32>(slotAddr(ino) + FS_INODE_FLAGS) == 0) return -EINVAL;
  if (maxBlocks == 0 || <u64>fileBlock + maxBlocks > 0xffffffff) return -EINVAL;
  const start = extStart(ino);
  const count = extCount(ino);
  const found = findExtent(ino, fileBlock);
  if (found >= 0) {
    const e = start + <u32>found;
    const offset = fileBlock - extFile(e);
    if (offset < extLength(e)) {
      const left = extLength(e) - offset;
      mapDiskBlock = extDisk(e) + offset;
      mapBlockCount = left < maxBlocks ? left : maxBlocks;
      mapFlags = MAP_MAPPED | (left <= maxBlocks ? MAP_BOUNDARY : 0);
      return 0;
    }
  }
  // A hole: it runs to the next extent (or forever).
  const next = <u32>(found + 1);
  let holeBlocks = maxBlocks;
  if (next < count) {
    const gap = extFile(start + next) - fileBlock;
    if (gap < holeBlocks) holeBlocks = gap;
  }
  if (!create) {
    mapDiskBlock = 0;
    mapBlockCount = holeBlocks;
    mapFlags = 0;
    return 0;
  }
  // Allocate right after the previous extent's disk run when possible; a file's first run goes
  // where the last allocation ended, so that files written one after another do not interleave.
  let goal = load<u32>(ctrlAddr(CTRL_FS_ALLOC_HINT));
  if (found >= 0) {
    const prev = start + <u32>found;
    goal = extDisk(prev) + extLength(prev) + (fileBlock - extFile(prev) - extLength(prev));
  }
  if (!allocateRun(goal, holeBlocks)) return -ENOSPC;
  const diskBlock = mapDiskBlock;
  const length = mapBlockCount;
  if (!insertExtent(ino, next, fileBlock, diskBlock, length)) {
    markRun(diskBlock, length, false);
    return -ENOSPC;
  }
  store<u32>(ctrlAddr(CTRL_FS_ALLOC_HINT), diskBlock + length);
  mapDiskBlock = diskBlock;
  mapBlockCount = length;
  mapFlags = MAP_MAPPED | MAP_NEW | (length == holeBlocks && next < count ? MAP_BOUNDARY : 0);
  return 0;
}

/**
 * Removes `ino`'s mapping from file block `fromBlock` on, last extent first, writing each freed
 * disk run (as extent records) to the scratch area. Stops after scratchCapacity runs. Returns the
 * number of runs written; call again while it returns scratchCapacity.
 */
export function fsTruncate(ino: u32, fromBlock: u32): i32 {
  if (!inoValid(ino) || load<u32>(slotAddr(ino) + FS_INODE_FLAGS) == 0) return -EINVAL;
  const start = extStart(ino);
  let count = extCount(ino);
  let written: u32 = 0;
  while (count > 0 && written < scratchCapacity) {
    const e = start + count - 1;
    const file = extFile(e);
    const length = extLength(e);
    if (<u64>file + length <= <u64>fromBlock) break;
    const out = <usize>(scratchBase + written * FS_EXTENT_SIZE);
    if (file >= fromBlock) {
      store<u32>(out + FS_EXTENT_FILE, file);
      store<u32>(out + FS_EXTENT_DISK, extDisk(e));
      store<u32>(out + FS_EXTENT_LENGTH, length);
      count--;
    } else {
      const keep = fromBlock - file;
      store<u32>(out + FS_EXTENT_FILE, fromBlock);
      store<u32>(out + FS_EXTENT_DISK, extDisk(e) + keep);
      store<u32>(out + FS_EXTENT_LENGTH, length - keep);
      store<u32>(extentAddr(e) + FS_EXTENT_LENGTH, keep);
    }
    written++;
  }
  store<u32>(slotAddr(ino) + FS_INODE_COUNT, count);
  return <i32>written;
}

/** Returns a disk run to the free space (after the commit that stopped referencing it). */
export function fsFreeRun(diskBlock: u32, length: u32): i32 {
  if (length == 0 || <u64>diskBlock + length > <u64>blockCount) return -EINVAL;
  for (let b = diskBlock; b < diskBlock + length; b++) if (!blockUsed(b)) return -EUCLEAN;
  markRun(diskBlock, length, false);
  return 0;
}

/** Blocks mapped by `ino` (the sum of its extents). */
export function fsMappedBlocks(ino: u32): u32 {
  if (!inoValid(ino)) return 0;
  const start = extStart(ino);
  const count = extCount(ino);
  let total: u32 = 0;
  for (let i: u32 = 0; i < count; i++) total += extLength(start + i);
  return total;
}
