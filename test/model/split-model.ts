// A plain, slow model of Linux's bio splitting against queue limits, written from the spec
// (dio-semantics.md 5.2), not from the core, so that it can serve as an independent oracle.
// see: block/blk-merge.c bio_split_rw_at(), get_max_io_size(), bvec_split_segs()

/** Queue limits as the split sees them, already validated (spec 5.1). Sizes in bytes. */
export interface ModelLimits {
  logicalBlockSize: number;
  physicalBlockSize: number;
  maxSectors: number;
  maxSegments: number;
  maxSegmentSize: number;
  segBoundaryMask: number;
  virtBoundaryMask: number;
  chunkSectors: number;
}

/** One bvec: `len` bytes at physical address `addr`; its page offset is addr % 4096. */
export interface ModelBvec { addr: number; len: number }

/**
 * The pieces in submission order, or the errno the bio ends with (-11 EAGAIN, -22 EINVAL) when no
 * piece goes out. When a later remainder cannot be split (its front rounds down to 0 bytes), the
 * pieces in front of it go out and the remainder ends with `tailError` (-22).
 */
export type ModelSplitResult =
  | { pieces: { sector: number; sectors: number }[]; tailError?: number; remainder?: { sector: number; sectors: number } }
  | { error: number };

const PAGE_BYTES = 4096;
const SECTOR_BYTES = 512;
const EAGAIN = 11;
const EINVAL = 22;
/** A bound on the number of pieces, so a model bug cannot loop forever. */
const PIECES_MAX = 1 << 20;

/** x mod m for non-negative integers, exact beyond 32 bits. */
function mod(x: number, m: number): number {
  return x - Math.floor(x / m) * m;
}

function roundDown(x: number, unit: number): number {
  return x - mod(x, unit);
}

/** `value & mask` for a mask of the form 2^k - 1 (k up to 32), without 32-bit wrap-around. */
function lowBits(value: number, mask: number): number {
  return mod(value, mask + 1);
}

/** Spec 5.2 step 2: the most sectors the piece starting at `sector` may have. */
function maxIoSectors(limits: ModelLimits, sector: number): number {
  const pbsSectors = limits.physicalBlockSize / SECTOR_BYTES;
  const lbsSectors = limits.logicalBlockSize / SECTOR_BYTES;
  let max = limits.maxSectors;
  if (limits.chunkSectors !== 0) {
    max = Math.min(max, limits.chunkSectors - mod(sector, limits.chunkSectors));
  }
  const start = mod(sector, pbsSectors);
  const end = roundDown(start + max, pbsSectors);
  if (end > start) return end - start;
  return roundDown(max, lbsSectors);
}

/**
 * Spec 5.2 step 1: the fast path. "The bio has exactly one bvec" is a property of the bio's bvec
 * table (Linux v6.x bio_may_need_split() reads bi_vcnt and bi_io_vec[0]), which a split does not
 * change: so it is decided once, on the original bvecs, and a remainder never takes it on its own.
 */
function fastPathFits(limits: ModelLimits, bvecs: ModelBvec[]): boolean {
  if (limits.chunkSectors !== 0) return false;
  if (bvecs.length !== 1) return false;
  return mod(bvecs[0].addr, PAGE_BYTES) + bvecs[0].len <= PAGE_BYTES;
}

/** Spec 5.2 step 3: bytes the front piece may take, or null when the whole bio fits. */
function walkSegments(limits: ModelLimits, bvecs: ModelBvec[], maxBytes: number): number | null {
  let nsegs = 0;
  let bytes = 0;
  for (let i = 0; i < bvecs.length; i++) {
    const bv = bvecs[i];
    const offset = mod(bv.addr, PAGE_BYTES);
    if (limits.virtBoundaryMask !== 0 && i > 0) {
      const prev = bvecs[i - 1];
      const prevEnd = mod(prev.addr, PAGE_BYTES) + prev.len;
      if (lowBits(offset, limits.virtBoundaryMask) !== 0 || lowBits(prevEnd, limits.virtBoundaryMask) !== 0) {
        return bytes; // a gap the device cannot take: split before this bvec
      }
    }
    if (nsegs < limits.maxSegments && bytes + bv.len <= maxBytes && offset + bv.len <= PAGE_BYTES) {
      nsegs += 1;
      bytes += bv.len;
      continue;
    }
    // Cut the bvec into segments; only the bytes up to maxBytes are considered.
    const room = maxBytes - bytes;
    let left = Math.min(bv.len, room);
    let taken = 0;
    while (left > 0 && nsegs < limits.maxSegments) {
      const paddr = bv.addr + taken;
      const toBoundary = limits.segBoundaryMask - lowBits(paddr, limits.segBoundaryMask) + 1;
      const segment = Math.min(left, toBoundary, limits.maxSegmentSize);
      nsegs += 1;
      taken += segment;
      left -= segment;
      if (limits.virtBoundaryMask !== 0 && lowBits(offset + taken, limits.virtBoundaryMask) !== 0) break;
    }
    bytes += taken;
    if (left > 0 || bv.len > room) return bytes;
  }
  return null;
}

/** The bvecs after the first `skip` bytes: the iterator of the remainder. */
function advance(bvecs: ModelBvec[], skip: number): ModelBvec[] {
  const rest: ModelBvec[] = [];
  let left = skip;
  for (const bv of bvecs) {
    if (left >= bv.len) {
      left -= bv.len;
      continue;
    }
    rest.push({ addr: bv.addr + left, len: bv.len - left });
    left = 0;
  }
  return rest;
}

/**
 * Splits a read or write bio of `bvecs` starting at `sector` as Linux does: cut the front piece,
 * re-split the remainder by the same rule until it fits. An error at the first split ends the bio
 * with no pieces; a remainder whose split rounds down to 0 bytes ends with EINVAL after the pieces
 * in front of it went out.
 */
export function modelSplit(
  limits: ModelLimits, sector: number, bvecs: ModelBvec[], flags: { nowait?: boolean; atomic?: boolean } = {},
): ModelSplitResult {
  const pieces: { sector: number; sectors: number }[] = [];
  let rest = bvecs.filter((bv) => bv.len > 0).map((bv) => ({ addr: bv.addr, len: bv.len }));
  let at = sector;
  const onePage = fastPathFits(limits, rest);
  while (rest.length > 0) {
    if (pieces.length >= PIECES_MAX) throw new Error(`modelSplit: more than ${PIECES_MAX} pieces`);
    const restBytes = rest.reduce((sum, bv) => sum + bv.len, 0);
    const cut = onePage ? null : walkSegments(limits, rest, maxIoSectors(limits, at) * SECTOR_BYTES);
    if (cut === null) {
      pieces.push({ sector: at, sectors: restBytes / SECTOR_BYTES });
      break;
    }
    // Spec 5.2 step 4: a split is refused for ATOMIC and NOWAIT, else rounded to the logical block.
    if (flags.atomic) return { error: -EINVAL };
    if (flags.nowait) return { error: -EAGAIN };
    const frontBytes = roundDown(cut, limits.logicalBlockSize);
    if (frontBytes === 0) {
      if (pieces.length === 0) return { error: -EINVAL };
      return { pieces, tailError: -EINVAL, remainder: { sector: at, sectors: restBytes / SECTOR_BYTES } };
    }
    const frontSectors = frontBytes / SECTOR_BYTES;
    pieces.push({ sector: at, sectors: frontSectors });
    at += frontSectors;
    rest = advance(rest, frontBytes);
  }
  return { pieces };
}
