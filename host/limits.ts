// Queue limits, validated once, as the kernel does when a disk is set up.
// see: block/blk-settings.c blk_validate_limits(); spec section 5.1.
import { DioError } from "./errors.js";
import { PAGE_BYTES, SECTOR_BYTES, SECTOR_SHIFT } from "./constants.js";

/** The queue limits of a disk (API.md). Sizes in bytes, counts in sectors where named so. */
export interface QueueLimits {
  logicalBlockSize: number;
  physicalBlockSize: number;
  maxHwSectors: number;
  maxSectors: number;
  maxSegments: number;
  maxSegmentSize: number;
  segBoundaryMask: number;
  virtBoundaryMask: number;
  chunkSectors: number;
  writeCache: boolean;
  fua: boolean;
}

/** Linux's defaults for a driver that sets nothing (spec 5.1). */
export const BLK_SAFE_MAX_SECTORS = 255;
export const BLK_DEF_MAX_SECTORS_CAP = 2560;
export const BLK_MAX_SEGMENTS = 128;
export const BLK_MAX_SEGMENT_SIZE = 65536;
export const UINT_MAX = 0xffffffff;
const PAGE_SECTORS = PAGE_BYTES / SECTOR_BYTES;

const SYSCALL = "Disk.create";

function invalid(message: string): DioError {
  return new DioError("EINVAL", SYSCALL, message);
}

function isPowerOfTwo(value: number): boolean {
  return Number.isInteger(value) && value > 0 && (value & (value - 1)) === 0 && value <= 2 ** 30;
}

function checkCount(name: string, value: number | undefined, min: number, max = UINT_MAX): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} ${String(value)} must be an integer in ${min}..${max}`);
  }
}

/** A mask of the form 2^k - 1 (k ≥ 0), as boundary masks are. */
function isLowMask(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= UINT_MAX && Number.isInteger(Math.log2(value + 1));
}

/**
 * Fills in Linux's defaults and checks every limit, as blk_validate_limits() does. `partial` is
 * what the user gave; `logicalBlockSize`, `physicalBlockSize`, `writeCache` and `fua` may also come
 * from the top level of DiskOptions (passed in `top`). Throws DioError EINVAL naming the field.
 */
export function validateLimits(partial: Partial<QueueLimits> = {}, top: Partial<QueueLimits> = {}): QueueLimits {
  const pick = <K extends keyof QueueLimits>(key: K): QueueLimits[K] | undefined => {
    const a = top[key];
    const b = partial[key];
    if (a !== undefined && b !== undefined && a !== b) {
      throw invalid(`${key} is given twice with different values (${String(a)} and ${String(b)})`);
    }
    return a ?? b;
  };

  const lbs = pick("logicalBlockSize") ?? SECTOR_BYTES;
  if (!isPowerOfTwo(lbs) || lbs < 512 || lbs > 4096) {
    throw invalid(`logicalBlockSize ${String(lbs)} must be a power of two from 512 to 4096`);
  }
  const lbsSectors = lbs >> SECTOR_SHIFT;

  let pbs = pick("physicalBlockSize") ?? lbs;
  if (!isPowerOfTwo(pbs) || pbs < 512 || pbs > 65536) {
    throw invalid(`physicalBlockSize ${String(pbs)} must be a power of two from 512 to 65536`);
  }
  if (pbs < lbs) pbs = lbs; // raised to at least the logical block size

  const userMaxSectors = pick("maxSectors");
  checkCount("maxSectors", userMaxSectors, PAGE_SECTORS);
  // A driver that states only maxSectors states its hardware limit too (blk_queue_max_hw_sectors
  // set both): the hardware default then never caps the user's value below what was asked.
  let maxHwSectors = pick("maxHwSectors") ?? Math.max(BLK_SAFE_MAX_SECTORS, userMaxSectors ?? 0);
  checkCount("maxHwSectors", maxHwSectors, PAGE_SECTORS);
  maxHwSectors -= maxHwSectors % lbsSectors;

  let maxSectors = Math.min(maxHwSectors, userMaxSectors ?? BLK_DEF_MAX_SECTORS_CAP);
  maxSectors -= maxSectors % lbsSectors;

  const maxSegments = pick("maxSegments") ?? BLK_MAX_SEGMENTS;
  checkCount("maxSegments", maxSegments, 1, 65535);

  const virtBoundaryMask = pick("virtBoundaryMask") ?? 0;
  if (!isLowMask(virtBoundaryMask) || virtBoundaryMask > PAGE_BYTES - 1) {
    throw invalid(`virtBoundaryMask ${String(virtBoundaryMask)} must be 0 or 2^k - 1 below ${PAGE_BYTES}`);
  }
  let maxSegmentSize = pick("maxSegmentSize");
  if (virtBoundaryMask !== 0) {
    if (maxSegmentSize !== undefined && maxSegmentSize !== UINT_MAX) {
      throw invalid(`maxSegmentSize ${maxSegmentSize} must be unset or ${UINT_MAX} when virtBoundaryMask is set`);
    }
    maxSegmentSize = UINT_MAX;
  }
  maxSegmentSize ??= BLK_MAX_SEGMENT_SIZE;
  if (typeof maxSegmentSize !== "number" || !Number.isInteger(maxSegmentSize) || maxSegmentSize < PAGE_BYTES || maxSegmentSize > UINT_MAX) {
    throw invalid(`maxSegmentSize ${String(maxSegmentSize)} must be at least the ${PAGE_BYTES}-byte page size`);
  }

  const segBoundaryMask = pick("segBoundaryMask") ?? UINT_MAX;
  if (!isLowMask(segBoundaryMask) || segBoundaryMask < PAGE_BYTES - 1) {
    throw invalid(`segBoundaryMask ${String(segBoundaryMask)} must be 2^k - 1 and at least ${PAGE_BYTES - 1}`);
  }

  const chunkSectors = pick("chunkSectors") ?? 0;
  checkCount("chunkSectors", chunkSectors, 0);
  if (chunkSectors % lbsSectors !== 0) {
    throw invalid(`chunkSectors ${chunkSectors} must be a multiple of the logical block (${lbsSectors} sectors)`);
  }

  const writeCache = pick("writeCache") ?? true;
  if (typeof writeCache !== "boolean") throw invalid(`writeCache ${String(writeCache)} must be a boolean`);
  let fua = pick("fua") ?? true;
  if (typeof fua !== "boolean") throw invalid(`fua ${String(fua)} must be a boolean`);
  if (!writeCache) fua = false; // the FUA feature is cleared without a volatile cache

  return {
    logicalBlockSize: lbs, physicalBlockSize: pbs, maxHwSectors, maxSectors, maxSegments,
    maxSegmentSize, segBoundaryMask, virtBoundaryMask, chunkSectors, writeCache, fua,
  };
}
