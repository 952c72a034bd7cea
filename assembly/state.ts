// Per-instance copies of the control block's fixed fields. Every thread's instance of the core
// reads them once at core_attach(); they never change after Disk.create() has written them.
import {
  LAYOUT_BASE, LAYOUT_MAGIC, LAYOUT_VERSION, CTRL_MAGIC, CTRL_VERSION, CTRL_IMAGE_BASE,
  CTRL_IMAGE_BYTES, CTRL_SECTOR_COUNT, CTRL_LOGICAL_BLOCK, CTRL_PHYSICAL_BLOCK, CTRL_MAX_SECTORS,
  CTRL_MAX_SEGMENTS, CTRL_MAX_SEGMENT_SIZE, CTRL_SEG_BOUNDARY_MASK, CTRL_VIRT_BOUNDARY_MASK,
  CTRL_CHUNK_SECTORS, CTRL_FEATURES, CTRL_BVEC_BASE, CTRL_BVEC_CAPACITY, CTRL_PIECE_BASE,
  CTRL_PIECE_CAPACITY, CTRL_CACHE_HEADER_BASE, CTRL_CACHE_DATA_BASE, CTRL_CACHE_SLOTS,
  CTRL_CACHE_INDEX_BASE, CTRL_CACHE_INDEX_SLOTS, CTRL_ARENA_BASE, CTRL_ARENA_BYTES,
  CTRL_BATCH_BASE, CTRL_BATCH_CAPACITY, CTRL_BYTES, CTRL_CACHE_LINE_MAP, SECTOR_SHIFT, EINVAL,
} from "./layout";

export let imageBase: u32 = 0;
export let imageBytes: u32 = 0;
export let sectorCount: u32 = 0;
export let logicalBlockBytes: u32 = 512;
export let physicalBlockBytes: u32 = 512;
export let maxSectors: u32 = 255;
export let maxSegments: u32 = 128;
export let maxSegmentBytes: u32 = 65536;
export let segBoundaryMask: u32 = 0xffffffff;
export let virtBoundaryMask: u32 = 0;
export let chunkSectors: u32 = 0;
export let features: u32 = 0;
export let bvecBase: u32 = 0;
export let bvecCapacity: u32 = 0;
export let pieceBase: u32 = 0;
export let pieceCapacity: u32 = 0;
export let cacheHeaderBase: u32 = 0;
export let cacheDataBase: u32 = 0;
export let cacheSlots: u32 = 0;
export let cacheIndexBase: u32 = 0;
export let cacheIndexSlots: u32 = 0;
/** A bit per 4 KiB line of the image, set while the cache index holds the line. */
export let cacheLineMap: u32 = 0;
export let arenaBase: u32 = 0;
export let arenaEnd: u32 = 0;
export let batchBase: u32 = 0;
export let batchCapacity: u32 = 0;

/** The line map's size: a bit per 4 KiB line of the image, in whole 32-bit words. */
export function lineMapBytes(): u32 {
  return ((imageBytes + 4095) / 4096 + 31) / 32 * 4;
}

@inline export function ctrlAddr(field: u32): usize {
  return <usize>(LAYOUT_BASE + field);
}
@inline export function ctrlLoad(field: u32): u32 {
  return load<u32>(ctrlAddr(field));
}

function isPowerOfTwo(value: u32): bool {
  return value != 0 && (value & (value - 1)) == 0;
}

/** True when [base, base + bytes) lies inside memory and above the control block. */
function regionFits(base: u32, bytes: u64): bool {
  const memoryBytes = <u64>memory.size() << 16;
  if (<u64>base < <u64>(LAYOUT_BASE + CTRL_BYTES)) return false;
  return <u64>base + bytes <= memoryBytes;
}

/**
 * Reads the control block into this instance's globals and checks every region against the
 * memory's size. Returns 0, or -EINVAL when the block is not a dioemu layout of this version.
 */
export function attach(): i32 {
  if (ctrlLoad(CTRL_MAGIC) != LAYOUT_MAGIC) return -EINVAL;
  if (ctrlLoad(CTRL_VERSION) != LAYOUT_VERSION) return -EINVAL;
  imageBase = ctrlLoad(CTRL_IMAGE_BASE);
  imageBytes = ctrlLoad(CTRL_IMAGE_BYTES);
  sectorCount = ctrlLoad(CTRL_SECTOR_COUNT);
  logicalBlockBytes = ctrlLoad(CTRL_LOGICAL_BLOCK);
  physicalBlockBytes = ctrlLoad(CTRL_PHYSICAL_BLOCK);
  maxSectors = ctrlLoad(CTRL_MAX_SECTORS);
  maxSegments = ctrlLoad(CTRL_MAX_SEGMENTS);
  maxSegmentBytes = ctrlLoad(CTRL_MAX_SEGMENT_SIZE);
  segBoundaryMask = ctrlLoad(CTRL_SEG_BOUNDARY_MASK);
  virtBoundaryMask = ctrlLoad(CTRL_VIRT_BOUNDARY_MASK);
  chunkSectors = ctrlLoad(CTRL_CHUNK_SECTORS);
  features = ctrlLoad(CTRL_FEATURES);
  bvecBase = ctrlLoad(CTRL_BVEC_BASE);
  bvecCapacity = ctrlLoad(CTRL_BVEC_CAPACITY);
  pieceBase = ctrlLoad(CTRL_PIECE_BASE);
  pieceCapacity = ctrlLoad(CTRL_PIECE_CAPACITY);
  cacheHeaderBase = ctrlLoad(CTRL_CACHE_HEADER_BASE);
  cacheDataBase = ctrlLoad(CTRL_CACHE_DATA_BASE);
  cacheSlots = ctrlLoad(CTRL_CACHE_SLOTS);
  cacheIndexBase = ctrlLoad(CTRL_CACHE_INDEX_BASE);
  cacheIndexSlots = ctrlLoad(CTRL_CACHE_INDEX_SLOTS);
  cacheLineMap = ctrlLoad(CTRL_CACHE_LINE_MAP);
  arenaBase = ctrlLoad(CTRL_ARENA_BASE);
  arenaEnd = arenaBase + ctrlLoad(CTRL_ARENA_BYTES);
  batchBase = ctrlLoad(CTRL_BATCH_BASE);
  batchCapacity = ctrlLoad(CTRL_BATCH_CAPACITY);

  if (!isPowerOfTwo(logicalBlockBytes) || logicalBlockBytes < 512 || logicalBlockBytes > 4096) return -EINVAL;
  if (!isPowerOfTwo(physicalBlockBytes) || physicalBlockBytes < logicalBlockBytes) return -EINVAL;
  if (maxSectors == 0 || maxSegments == 0 || maxSegmentBytes < 4096) return -EINVAL;
  if (segBoundaryMask < 4095) return -EINVAL;
  if (<u64>sectorCount << SECTOR_SHIFT != <u64>imageBytes) return -EINVAL;
  if (!regionFits(imageBase, imageBytes)) return -EINVAL;
  if (!regionFits(bvecBase, <u64>bvecCapacity * 8)) return -EINVAL;
  if (!regionFits(pieceBase, <u64>pieceCapacity * 16)) return -EINVAL;
  if (!regionFits(batchBase, <u64>batchCapacity * 32)) return -EINVAL;
  if (!regionFits(arenaBase, <u64>(arenaEnd - arenaBase))) return -EINVAL;
  if (cacheSlots != 0) {
    if (!isPowerOfTwo(cacheSlots) || !isPowerOfTwo(cacheIndexSlots)) return -EINVAL;
    if (cacheIndexSlots < cacheSlots) return -EINVAL;
    if (!regionFits(cacheHeaderBase, <u64>cacheSlots * 16)) return -EINVAL;
    if (!regionFits(cacheDataBase, <u64>cacheSlots << 12)) return -EINVAL;
    if (!regionFits(cacheIndexBase, <u64>cacheIndexSlots * 8)) return -EINVAL;
    if (!regionFits(cacheLineMap, <u64>lineMapBytes())) return -EINVAL;
  }
  return 0;
}
