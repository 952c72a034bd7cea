// Where to split a bio against the queue limits: a pure decision, kept apart from the code that
// performs the split (blk.ts). see: block/blk-merge.c bio_split_rw_at(), get_max_io_size(),
// bvec_split_segs(), get_max_segment_size(); block/blk.h bio_may_need_split().
import {
  BVEC_ADDR, BVEC_LEN, BVEC_SIZE, PAGE_BYTES, SECTOR_SHIFT, BIO_ATOMIC, BIO_NOWAIT, EINVAL, EAGAIN,
} from "./layout";
import {
  bvecBase, chunkSectors, logicalBlockBytes, maxSectors, maxSegmentBytes, maxSegments,
  physicalBlockBytes, segBoundaryMask, virtBoundaryMask,
} from "./state";

@inline export function bvecAddr(index: u32): u32 {
  return load<u32>(<usize>(bvecBase + index * BVEC_SIZE + BVEC_ADDR));
}
@inline export function bvecLen(index: u32): u32 {
  return load<u32>(<usize>(bvecBase + index * BVEC_SIZE + BVEC_LEN));
}

/** Sectors left before the next chunk boundary; exact modulo when the chunk is not a power of two. */
function chunkSectorsLeft(sector: u32, chunk: u32): u32 {
  if ((chunk & (chunk - 1)) == 0) return chunk - (sector & (chunk - 1));
  return chunk - sector % chunk;
}

/** The most bytes one request starting at `sector` may carry (at most 2^31). see: get_max_io_size() */
export function maxIoBytes(sector: u32): u32 {
  // 64-bit throughout: limits up to UINT_MAX sectors are legal and must not wrap.
  let sectorsMax = <u64>maxSectors;
  if (chunkSectors != 0) {
    const left = <u64>chunkSectorsLeft(sector, chunkSectors);
    if (left < sectorsMax) sectorsMax = left;
  }
  const pbsSectors = <u64>(physicalBlockBytes >> SECTOR_SHIFT);
  const lbsSectors = <u64>(logicalBlockBytes >> SECTOR_SHIFT);
  const start = <u64>sector & (pbsSectors - 1);
  const end = (start + sectorsMax) & ~(pbsSectors - 1);
  // Ending the request on a physical-block boundary is preferred when there is room for it.
  let bytes = end > start ? (end - start) << SECTOR_SHIFT : (sectorsMax & ~(lbsSectors - 1)) << SECTOR_SHIFT;
  if (bytes > 0x80000000) bytes = 0x80000000;
  return <u32>bytes;
}

/** Length of the segment that starts at physical address `addr` with `len` bytes available. */
@inline function maxSegmentLen(addr: u32, len: u32): u32 {
  // 64-bit so that a mask of 0xFFFFFFFF gives a 4 GiB boundary, not zero.
  const toBoundary = <u64>segBoundaryMask - <u64>(addr & segBoundaryMask) + 1;
  let seg = <u64>len;
  if (toBoundary < seg) seg = toBoundary;
  if (<u64>maxSegmentBytes < seg) seg = <u64>maxSegmentBytes;
  return <u32>seg;
}

// Running totals of the walk, shared by splitBytes() and cutBvec() (one instance, one thread).
let walkSegments: u32 = 0;
let walkBytes: u32 = 0;

/**
 * Counts the segments of one bvec that does not fit the fast path; returns true when part of it
 * does not fit and the bio must be split. see: bvec_split_segs()
 */
function cutBvec(addr: u32, len: u32, bytesMax: u32): bool {
  const lenMax = bytesMax - walkBytes;
  let left = len < lenMax ? len : lenMax;
  let total: u32 = 0;
  while (left != 0 && walkSegments < maxSegments) {
    const seg = maxSegmentLen(addr + total, left);
    walkSegments++;
    total += seg;
    left -= seg;
    if (((addr + total) & virtBoundaryMask) != 0) break;
  }
  walkBytes += total;
  return left != 0 || len > lenMax;
}

/**
 * True when a bio over bvecs [index, index + count) cannot need a split: a single bvec inside one
 * page and no chunk limit. Like the kernel, this looks at the bio's whole bvec table, so the
 * remainder of a split bio never takes this shortcut. see: block/blk.h bio_may_need_split()
 */
export function bioFitsOnePage(index: u32, count: u32): bool {
  if (chunkSectors != 0 || count != 1) return false;
  return (bvecAddr(index) & (PAGE_BYTES - 1)) + bvecLen(index) <= PAGE_BYTES;
}

/**
 * Where to split the bio whose data starts `done` bytes into bvec `index` and runs for `bytes`
 * bytes, at `sector` (`onePage`: bioFitsOnePage() of the whole bio). Returns 0 when it fits the
 * limits whole, the length of the front piece in bytes (a multiple of the logical block size), or
 * a negative errno: -EINVAL for an ATOMIC bio or a piece that would round down to nothing,
 * -EAGAIN for a NOWAIT bio.
 */
export function splitBytes(sector: u32, index: u32, done: u32, bytes: u32, flags: u32, onePage: bool): i32 {
  if (onePage) return 0;
  const firstAddr = bvecAddr(index) + done;
  const firstLen = bvecLen(index) - done;
  const bytesMax = maxIoBytes(sector);
  walkSegments = 0;
  walkBytes = 0;
  let left = bytes;
  let prevEnd: u32 = 0;
  let i = index;
  let addr = firstAddr;
  let len = firstLen;
  let needSplit = false;
  while (left != 0) {
    if (len > left) len = left;
    // see: bvec_gap_to_prev(): a gap against the virt boundary cannot be in one request.
    if (virtBoundaryMask != 0 && walkSegments != 0 &&
        ((addr & virtBoundaryMask) != 0 || (prevEnd & virtBoundaryMask) != 0)) {
      needSplit = true;
      break;
    }
    const pageOffset = addr & (PAGE_BYTES - 1);
    if (walkSegments < maxSegments && <u64>walkBytes + len <= <u64>bytesMax &&
        pageOffset + len <= PAGE_BYTES) {
      walkSegments++;
      walkBytes += len;
    } else if (cutBvec(addr, len, bytesMax)) {
      needSplit = true;
      break;
    }
    prevEnd = addr + len;
    left -= len;
    i++;
    if (left != 0) {
      addr = bvecAddr(i);
      len = bvecLen(i);
    }
  }
  if (!needSplit) return 0;
  if ((flags & BIO_ATOMIC) != 0) return -EINVAL;
  if ((flags & BIO_NOWAIT) != 0) return -EAGAIN;
  // A split point is always a multiple of the logical block size.
  const front = walkBytes & ~(logicalBlockBytes - 1);
  if (front == 0) return -EINVAL;
  return <i32>front;
}
