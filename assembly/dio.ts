// The direct-IO mapping loop: walks the user's pages against file blocks (get_block) and builds
// bios, as fs/direct-io.c do_direct_IO() does in 3.x, chunk by chunk: page coalescing, the
// disk- and file-contiguity tests before a chunk joins the open bio, bio_add_page's 3.x limits,
// the boundary hint, sub-block zeroing of new blocks (with the head-zero quirk), read holes zeroed
// one dio block at a time, EOF, and the stop at a write into a hole (-ENOTBLK).
// see: fs/direct-io.c do_direct_IO(), get_more_blocks(), submit_page_section(),
// dio_send_cur_page(), dio_new_bio(), dio_bio_add_page(), dio_zero_block(); spec 2.5-2.12.
//
// Inputs: the user segments in the iov table (address, length: addresses in the arena); outputs:
// bios in the dio bio table, their segments in the dio bvec table, and the counters below.
import {
  CTRL_DIO_IOV_BASE, CTRL_DIO_IOV_CAPACITY, CTRL_DIO_BIO_BASE, CTRL_DIO_BIO_CAPACITY,
  CTRL_DIO_BVEC_BASE, CTRL_DIO_BVEC_CAPACITY, CTRL_ZERO_PAGE, DIO_BIO_SECTOR, DIO_BIO_BVEC_FIRST,
  DIO_BIO_BVEC_COUNT, DIO_BIO_BYTES, DIO_BIO_FILE_BLOCK, DIO_BIO_SIZE, BVEC_ADDR, BVEC_LEN,
  BVEC_SIZE, MAP_MAPPED, MAP_NEW, MAP_BOUNDARY, PAGE_BYTES, SECTOR_SHIFT, OP_READ, OP_WRITE,
  EINVAL, ENOSPC,
} from "./layout";
import { arenaBase, arenaEnd, ctrlLoad, maxSectors, maxSegments } from "./state";
import { fsGetBlock, mapBlockCount, mapDiskBlock, mapFlags } from "./fs";

/** -ENOTBLK: a write reached a hole inside i_size; the caller writes the rest buffered. */
export const ENOTBLK: i32 = 15;
/** Bio builders: the 3.x bio_add_page limits, or (4.x+) only the vector count. */
export const BUILDER_3X: u32 = 0;
export const BUILDER_VECS: u32 = 1;
/** DIO_SKIP_HOLES: none (raw device), the 3.10 rule, or the 4.x rule (spec 2.7). */
export const SKIP_HOLES_NONE: u32 = 0;
export const SKIP_HOLES_310: u32 = 1;
export const SKIP_HOLES_4X: u32 = 2;

// Outputs, per thread.
export let dioBioCount: u32 = 0;
export let dioBvecCount: u32 = 0;
/** Bytes of the request set up (transferred or zero-filled), as 4.x counts `result`. */
export let dioResultBytes: u64 = 0;
/** Why the loop stopped: 0 (all of the request), -ENOTBLK, or 1 (a read reached EOF). */
export let dioStop: i32 = 0;
/** Get_block calls made, and whether any block was freshly allocated. */
export let dioMapCalls: u32 = 0;
export let dioNewBlocks: bool = false;
/** Read-hole bytes zero-filled in user memory. */
export let dioZeroFilledBytes: u64 = 0;

// The request.
let op: u32 = 0;
let ino: u32 = 0;
let blkbits: u32 = 9;
let blkfactor: u32 = 0;
let eofBlock: u64 = 0;          // dio blocks: ALIGN(i_size, dio block) / dio block
let createLimit: u64 = 0;       // with DIO_SKIP_HOLES, a write maps with create=0 below this
let createLimitInFsBlocks: bool = false;
let builder: u32 = 0;
let zeroPage: u32 = 0;

// The submission state (struct dio_submit).
let blockInFile: u64 = 0;
let finalBlockInRequest: u64 = 0;
let blocksAvailable: u64 = 0;
let nextBlockForIo: u64 = 0;
let pagesInIo: u32 = 0;
let mapIsNew: bool = false;
let mapBoundary: bool = false;
let boundary: bool = false;
let startZeroDone: bool = false;
let haveMap: bool = false;
// The pending chunk (cur_page).
let curPage: u32 = 0;       // page address; 0 = none
let curOffset: u32 = 0;
let curLen: u32 = 0;
let curBlock: u64 = 0;
let curFsOffset: u64 = 0;   // file offset label, bytes
// The open bio.
let bioOpen: bool = false;
let bioNrVecs: u32 = 0;
let bioVcnt: u32 = 0;
let bioBytes: u32 = 0;
let bioFinalBlock: u64 = 0;
let bioLogicalOffset: u64 = 0;
let bioSectorStart: u64 = 0;
let bioBvecFirst: u32 = 0;
let error: i32 = 0;

@inline function iovAddr(i: u32): u32 {
  return load<u32>(<usize>(ctrlLoad(CTRL_DIO_IOV_BASE) + i * BVEC_SIZE + BVEC_ADDR));
}
@inline function iovLen(i: u32): u32 {
  return load<u32>(<usize>(ctrlLoad(CTRL_DIO_IOV_BASE) + i * BVEC_SIZE + BVEC_LEN));
}

/** bio_get_nr_vecs() of 3.x: min(max_sectors / 8 + 1, max_segments, 256). */
function nrVecsLimit(): u32 {
  let n = (maxSectors >>> 3) + 1;
  if (maxSegments < n) n = maxSegments;
  return n < 256 ? n : 256;
}

/** dio_bio_submit(): the open bio goes to the bio table. */
function submitBio(): void {
  if (!bioOpen) return;
  const record = <usize>(ctrlLoad(CTRL_DIO_BIO_BASE) + dioBioCount * DIO_BIO_SIZE);
  store<u32>(record + DIO_BIO_SECTOR, <u32>bioSectorStart);
  store<u32>(record + DIO_BIO_BVEC_FIRST, bioBvecFirst);
  store<u32>(record + DIO_BIO_BVEC_COUNT, bioVcnt);
  store<u32>(record + DIO_BIO_BYTES, bioBytes);
  store<u32>(record + DIO_BIO_FILE_BLOCK, <u32>(bioLogicalOffset >> blkbits));
  dioBioCount++;
  bioOpen = false;
}

/** dio_new_bio(): opens a bio at dio block `block`. -ENOSPC when the tables are full. */
function newBio(block: u64): i32 {
  if (dioBioCount >= ctrlLoad(CTRL_DIO_BIO_CAPACITY)) return -ENOSPC;
  let nrVecs = pagesInIo;
  if (builder == BUILDER_3X) {
    const limit = nrVecsLimit();
    if (limit < nrVecs) nrVecs = limit;
  }
  if (nrVecs > 256) nrVecs = 256;
  if (nrVecs == 0) nrVecs = 1;
  bioOpen = true;
  bioNrVecs = nrVecs;
  bioVcnt = 0;
  bioBytes = 0;
  bioSectorStart = block << (blkbits - SECTOR_SHIFT);
  bioLogicalOffset = curFsOffset;
  bioBvecFirst = dioBvecCount;
  return 0;
}

/** dio_bio_add_page() with 3.x bio_add_page's refusals. True when the chunk was added. */
function bioAddPage(): bool {
  if (bioVcnt == bioNrVecs) return false;
  if (builder == BUILDER_3X) {
    if (<u64>bioBytes + curLen > <u64>maxSectors << SECTOR_SHIFT) return false;
    if (bioVcnt + 1 > maxSegments) return false;
  }
  if (dioBvecCount >= ctrlLoad(CTRL_DIO_BVEC_CAPACITY)) return false;
  const bvec = <usize>(ctrlLoad(CTRL_DIO_BVEC_BASE) + dioBvecCount * BVEC_SIZE);
  store<u32>(bvec + BVEC_ADDR, curPage + curOffset);
  store<u32>(bvec + BVEC_LEN, curLen);
  dioBvecCount++;
  bioVcnt++;
  bioBytes += curLen;
  if (curOffset + curLen == PAGE_BYTES && pagesInIo > 0) pagesInIo--;
  bioFinalBlock = curBlock + (<u64>curLen >> blkbits);
  return true;
}

/** dio_send_cur_page(): the pending chunk joins the open bio, or a new one. */
function sendCurPage(): i32 {
  if (bioOpen) {
    // A chunk that is not disk-contiguous, or not file-contiguous, closes the open bio.
    const nextOffset = bioLogicalOffset + bioBytes;
    if (bioFinalBlock != curBlock || curFsOffset != nextOffset) submitBio();
  }
  if (!bioOpen) {
    const status = newBio(curBlock);
    if (status != 0) return status;
  }
  if (!bioAddPage()) {
    submitBio();
    const status = newBio(curBlock);
    if (status != 0) return status;
    // The retry must succeed (a fresh bio takes any single chunk).
    if (!bioAddPage()) return -ENOSPC;
  }
  return 0;
}

/** submit_page_section(): coalesce with the pending chunk, or send it and start a new one. */
function submitPageSection(page: u32, offset: u32, len: u32, block: u64): i32 {
  if (curPage != 0 && curPage == page && curOffset + curLen == offset && curBlock + (<u64>curLen >> blkbits) == block) {
    curLen += len;
  } else {
    if (curPage != 0) {
      const status = sendCurPage();
      if (status != 0) return status;
    }
    curPage = page;
    curOffset = offset;
    curLen = len;
    curBlock = block;
    curFsOffset = blockInFile << blkbits;
  }
  // The boundary hint: send the data now, the next block needs a metadata lookup.
  if (boundary) {
    const status = sendCurPage();
    if (status != 0) return status;
    submitBio();
    curPage = 0;
  }
  return 0;
}

/** dio_zero_block(): zeroes the uncovered head (end = false) or tail of a new fs block. */
function zeroBlock(end: bool): i32 {
  startZeroDone = true;
  if (blkfactor == 0 || !mapIsNew) return 0;
  const perFsBlock: u64 = <u64>1 << blkfactor;
  let chunkBlocks = blockInFile & (perFsBlock - 1);
  if (chunkBlocks == 0) return 0;
  if (end) chunkBlocks = perFsBlock - chunkBlocks;
  const status = submitPageSection(zeroPage, 0, <u32>(chunkBlocks << blkbits), nextBlockForIo);
  if (status != 0) return status;
  nextBlockForIo += chunkBlocks;
  return 0;
}

/** get_more_blocks() and the handling of its answer in do_direct_IO(). 1 = a hole. */
function getMoreBlocks(): i32 {
  const fsStart = blockInFile >> blkfactor;
  const fsEnd = (finalBlockInRequest - 1) >> blkfactor;
  let fsCount = fsEnd - fsStart + 1;
  if (fsCount > 0xffffffff) fsCount = 0xffffffff;
  dioMapCalls++;
  haveMap = true;
  if (ino == 0) {
    // The raw block device: every block maps to itself (blkdev_get_block).
    mapIsNew = false;
    mapBoundary = false;
    blocksAvailable = fsCount << blkfactor;
    nextBlockForIo = fsStart << blkfactor;
  } else {
    let create = op == OP_WRITE;
    if (create && createLimit != 0) {
      // DIO_SKIP_HOLES: a write inside i_size may only overwrite.
      if (createLimitInFsBlocks ? fsStart < createLimit : blockInFile < createLimit) create = false;
    }
    if (fsStart > 0xffffffff) return -EINVAL;
    const status = fsGetBlock(ino, <u32>fsStart, <u32>fsCount, create);
    if (status != 0) return status;
    if ((mapFlags & MAP_MAPPED) == 0) {
      mapIsNew = false;
      mapBoundary = false;
      blocksAvailable = 0;
      return 1;
    }
    mapIsNew = (mapFlags & MAP_NEW) != 0;
    if (mapIsNew) dioNewBlocks = true;
    mapBoundary = (mapFlags & MAP_BOUNDARY) != 0;
    blocksAvailable = <u64>mapBlockCount << blkfactor;
    nextBlockForIo = <u64>mapDiskBlock << blkfactor;
  }
  if (blkfactor != 0) {
    const remainder = blockInFile & ((<u64>1 << blkfactor) - 1);
    if (!mapIsNew) nextBlockForIo += remainder;
    blocksAvailable -= remainder;
  }
  return 0;
}

/** One user segment: do_direct_IO() over its pages. Returns 0, 1 (EOF), -ENOTBLK or -errno. */
function doSegment(base: u32, len: u32): i32 {
  const blocksize: u32 = 1 << blkbits;
  let address = base;
  const end = base + len;
  while (address < end) {
    const page = address & ~(PAGE_BYTES - 1);
    let from = address - page;
    const to = end - page < PAGE_BYTES ? end - page : PAGE_BYTES;
    while (from < to) {
      if (blocksAvailable == 0) {
        const mapped = getMoreBlocks();
        if (mapped < 0) return mapped;
        if (mapped == 1) {
          // A hole.
          if (op == OP_WRITE) return -ENOTBLK;
          if (blockInFile >= eofBlock) return 1;
          // Zero one dio block of the user's page and move on one block.
          memory.fill(<usize>(page + from), 0, blocksize);
          dioZeroFilledBytes += blocksize;
          dioResultBytes += blocksize;
          blockInFile++;
          from += blocksize;
          continue;
        }
        // The head of a new fs block that the request starts part-way into is zeroed on disk.
        if (!startZeroDone) {
          const status = zeroBlock(false);
          if (status != 0) return status;
        }
      }
      let chunkBlocks = <u64>((to - from) >> blkbits);
      if (blocksAvailable < chunkBlocks) chunkBlocks = blocksAvailable;
      const left = finalBlockInRequest - blockInFile;
      if (left < chunkBlocks) chunkBlocks = left;
      const chunkBytes = <u32>(chunkBlocks << blkbits);
      boundary = mapBoundary && chunkBlocks == blocksAvailable;
      const status = submitPageSection(page, from, chunkBytes, nextBlockForIo);
      boundary = false;
      if (status != 0) return status;
      nextBlockForIo += chunkBlocks;
      blockInFile += chunkBlocks;
      blocksAvailable -= chunkBlocks;
      from += chunkBytes;
      dioResultBytes += chunkBytes;
      if (blockInFile == finalBlockInRequest) break;
    }
    address = page + to;
  }
  return 0;
}

/**
 * Maps a direct-IO request and builds its bios. `startBlock` is the file offset in dio blocks
 * (1 << `dioBits` bytes); `fsBits` is the fs block (i_blkbits); `iSize` the file size in bytes;
 * `ino` 0 maps the raw device onto itself. `skipHoles` and `builderKind` pick the version's rules.
 * Returns 0 or -errno (a get_block error, -ENOSPC when the bio tables are full); dioStop says why
 * the loop ended. The caller has checked alignment and that the segments lie in the arena.
 */
export function dioMap(
  opIn: u32, inoIn: u32, dioBits: u32, fsBits: u32, iovCount: u32, startBlock: f64, iSize: f64,
  skipHoles: u32, builderKind: u32,
): i32 {
  // Reset every output and all state: nothing stale leaks from the previous call.
  dioBioCount = 0;
  dioBvecCount = 0;
  dioResultBytes = 0;
  dioStop = 0;
  dioMapCalls = 0;
  dioNewBlocks = false;
  dioZeroFilledBytes = 0;
  blocksAvailable = 0;
  nextBlockForIo = 0;
  mapIsNew = false;
  mapBoundary = false;
  boundary = false;
  startZeroDone = false;
  haveMap = false;
  curPage = 0;
  curLen = 0;
  bioOpen = false;
  error = 0;
  if (opIn != OP_READ && opIn != OP_WRITE) return -EINVAL;
  if (dioBits < 9 || dioBits > 12 || fsBits < dioBits || fsBits > 12) return -EINVAL;
  if (iovCount == 0 || iovCount > ctrlLoad(CTRL_DIO_IOV_CAPACITY)) return -EINVAL;
  if (!(startBlock >= 0) || !(iSize >= 0) || iSize > 9007199254740991) return -EINVAL;
  op = opIn;
  ino = inoIn;
  blkbits = dioBits;
  blkfactor = fsBits - dioBits;
  builder = builderKind;
  zeroPage = ctrlLoad(CTRL_ZERO_PAGE);
  const size = <u64>iSize;
  const dioBlock: u64 = <u64>1 << blkbits;
  eofBlock = (size + dioBlock - 1) >> blkbits;
  createLimit = 0;
  createLimitInFsBlocks = false;
  if (skipHoles == SKIP_HOLES_310) {
    createLimit = size >> blkbits;               // block_in_file < i_size >> blkbits
  } else if (skipHoles == SKIP_HOLES_4X && size > 0) {
    createLimit = ((size - 1) >> fsBits) + 1;    // fs_startblk <= (i_size - 1) >> i_blkbits
    createLimitInFsBlocks = true;
  }
  // Check the segments and count the pages they touch (pages_in_io).
  let bytes: u64 = 0;
  pagesInIo = 0;
  for (let i: u32 = 0; i < iovCount; i++) {
    const addr = iovAddr(i);
    const len = iovLen(i);
    if (addr < arenaBase || <u64>addr + len > <u64>arenaEnd) return -EINVAL;
    if (((addr | len) & (<u32>dioBlock - 1)) != 0) return -EINVAL;
    if (len != 0) pagesInIo += ((addr + len + PAGE_BYTES - 1) >> 12) - (addr >> 12);
    bytes += len;
  }
  if (blkfactor != 0) pagesInIo += 2;
  blockInFile = <u64>startBlock;
  let status: i32 = 0;
  for (let i: u32 = 0; i < iovCount && status == 0; i++) {
    const len = iovLen(i);
    if (len == 0) continue;
    // 3.x recomputes the end of the request per segment.
    finalBlockInRequest = blockInFile + (<u64>len >> blkbits);
    status = doSegment(iovAddr(i), len);
  }
  // After the loop, in the kernel's order: -ENOTBLK becomes 0 (the caller falls back), the tail
  // of a new block is zeroed, the pending chunk is sent, the open bio is submitted.
  if (status == -ENOTBLK || status == 1) {
    dioStop = status;
    status = 0;
  }
  if (haveMap) {
    const zeroStatus = zeroBlock(true);
    if (status == 0) status = zeroStatus;
  }
  if (curPage != 0) {
    const sendStatus = sendCurPage();
    if (status == 0) status = sendStatus;
    curPage = 0;
  }
  submitBio();
  error = status;
  return status;
}
