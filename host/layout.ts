// The host's view of the shared-memory map drawn in assembly/layout.ts: field offsets, record
// sizes, and the plan that places the regions for one disk. checkLayout() compares this view
// with the core's at load time.

export const LAYOUT_MAGIC = 0x454f4944;
export const LAYOUT_VERSION = 1;
export const LAYOUT_BASE = 65536;
export const CTRL_BYTES = 4096;

export const CTRL = {
  MAGIC: 0, VERSION: 4, IMAGE_BASE: 8, IMAGE_BYTES: 12, SECTOR_COUNT: 16, LOGICAL_BLOCK: 20,
  PHYSICAL_BLOCK: 24, MAX_SECTORS: 28, MAX_SEGMENTS: 32, MAX_SEGMENT_SIZE: 36,
  SEG_BOUNDARY_MASK: 40, VIRT_BOUNDARY_MASK: 44, CHUNK_SECTORS: 48, FEATURES: 52, BVEC_BASE: 56,
  BVEC_CAPACITY: 60, PIECE_BASE: 64, PIECE_CAPACITY: 68, CACHE_HEADER_BASE: 72,
  CACHE_DATA_BASE: 76, CACHE_SLOTS: 80, CACHE_INDEX_BASE: 84, CACHE_INDEX_SLOTS: 88,
  CACHE_HEAD: 92, CACHE_TAIL: 96, DEVICE_LOCK: 100, ARENA_BASE: 104, ARENA_BYTES: 108,
  BATCH_BASE: 112, BATCH_CAPACITY: 116, NEXT_WRITE_ID: 120, FLUSH_ISSUED: 124,
  STAT_BIOS: 128, STAT_SPLITS: 136, STAT_FLUSHES: 144, STAT_FUA_WRITES: 152,
  STAT_BYTES_READ: 160, STAT_BYTES_WRITTEN: 168, STAT_DIRTY_BYTES: 176, STAT_DESTAGED_BYTES: 184,
  FS_INODE_BASE: 192, FS_INODE_CAPACITY: 196, FS_EXTENT_BASE: 200, FS_EXTENT_CAPACITY: 204,
  FS_EXTENT_TOP: 208, FS_BITMAP_BASE: 212, FS_BLOCK_COUNT: 216, FS_FREE_BLOCKS: 220,
  FS_SCRATCH_BASE: 224, FS_SCRATCH_CAPACITY: 228, FS_ALLOC_HINT: 232,
  DIO_IOV_BASE: 240, DIO_IOV_CAPACITY: 244, DIO_BIO_BASE: 248, DIO_BIO_CAPACITY: 252,
  DIO_BVEC_BASE: 256, DIO_BVEC_CAPACITY: 260, ZERO_PAGE: 264, DESTAGE_TARGET: 268, DESTAGE_ENABLED: 272,
  DESTAGE_BELL: 276, DESTAGE_STOP: 280, DESTAGE_SLEEPING: 284, DESTAGE_CLAIM: 288,
  STAT_BYPASS_WRITES: 296, CACHE_LINE_MAP: 304,
  SHARE_STATE: 308, SHARE_SRC: 312, SHARE_DST: 316, SHARE_BYTES: 320, SHARE_READY: 324, SHARE_NEXT: 328,
  SHARE_JOINED: 332, SHARE_WAKE: 336,
} as const;

export const DIO_BIO = { SECTOR: 0, BVEC_FIRST: 4, BVEC_COUNT: 8, BYTES: 12, FILE_BLOCK: 16 } as const;
export const DIO_BIO_SIZE = 20;
/** Direct-IO table capacities: iovecs per call (UIO_MAXIOV), and bios and bvecs one mapping
 *  call may build; a call maps at most DIO_CALL_BYTES_MAX bytes, which always fits. */
export const DIO_IOV_CAPACITY = 1024;
export const DIO_BIO_CAPACITY = 32768 + 64;
export const DIO_BVEC_CAPACITY = 32768 + 64;
export const DIO_CALL_BYTES_MAX = 16 << 20;

export const FS_INODE_SIZE = 16;
export const FS_EXTENT_SIZE = 12;
export const MAP_MAPPED = 1;
export const MAP_NEW = 2;
export const MAP_BOUNDARY = 4;
/** The most inodes a filesystem may have (mkfs `inodes`), and the smallest fs block. */
export const FS_INODES_MAX = 65536;
export const FS_BLOCK_MIN = 1024;

export const FEATURE_WRITE_CACHE = 1;
export const FEATURE_FUA = 2;
export const FEATURE_CACHE_BYPASS = 4;

export const BVEC_SIZE = 8;
export const PIECE_SIZE = 16;
export const ENTRY_SIZE = 16;
export const INDEX_SIZE = 8;
export const BATCH_SIZE = 32;
export const BATCH = { OP: 0, FLAGS: 4, SECTOR: 8, BVEC_INDEX: 12, BVEC_COUNT: 16, BYTES: 20, STATUS: 24 } as const;
export const LINE_BYTES = 4096;

export const OP_READ = 0;
export const OP_WRITE = 1;
export const OP_FLUSH = 2;
export const BIO_SYNC = 1;
export const BIO_FUA = 2;
export const BIO_PREFLUSH = 4;
export const BIO_NOWAIT = 8;
export const BIO_ATOMIC = 16;

/**
 * The core's layout_value(i) must equal these, in this order: every offset, record size and shared
 * constant of assembly/layout.ts, as the host sees it. A mismatch is refused naming the field.
 */
export const LAYOUT_FIELDS: readonly [string, number | "below-base"][] = [
  ["LAYOUT_MAGIC", LAYOUT_MAGIC],
  ["LAYOUT_VERSION", LAYOUT_VERSION],
  ["LAYOUT_BASE", LAYOUT_BASE],
  ["CTRL_BYTES", CTRL_BYTES],
  ["CTRL_MAGIC", CTRL.MAGIC],
  ["CTRL_VERSION", CTRL.VERSION],
  ["CTRL_IMAGE_BASE", CTRL.IMAGE_BASE],
  ["CTRL_IMAGE_BYTES", CTRL.IMAGE_BYTES],
  ["CTRL_SECTOR_COUNT", CTRL.SECTOR_COUNT],
  ["CTRL_LOGICAL_BLOCK", CTRL.LOGICAL_BLOCK],
  ["CTRL_PHYSICAL_BLOCK", CTRL.PHYSICAL_BLOCK],
  ["CTRL_MAX_SECTORS", CTRL.MAX_SECTORS],
  ["CTRL_MAX_SEGMENTS", CTRL.MAX_SEGMENTS],
  ["CTRL_MAX_SEGMENT_SIZE", CTRL.MAX_SEGMENT_SIZE],
  ["CTRL_SEG_BOUNDARY_MASK", CTRL.SEG_BOUNDARY_MASK],
  ["CTRL_VIRT_BOUNDARY_MASK", CTRL.VIRT_BOUNDARY_MASK],
  ["CTRL_CHUNK_SECTORS", CTRL.CHUNK_SECTORS],
  ["CTRL_FEATURES", CTRL.FEATURES],
  ["CTRL_BVEC_BASE", CTRL.BVEC_BASE],
  ["CTRL_BVEC_CAPACITY", CTRL.BVEC_CAPACITY],
  ["CTRL_PIECE_BASE", CTRL.PIECE_BASE],
  ["CTRL_PIECE_CAPACITY", CTRL.PIECE_CAPACITY],
  ["CTRL_CACHE_HEADER_BASE", CTRL.CACHE_HEADER_BASE],
  ["CTRL_CACHE_DATA_BASE", CTRL.CACHE_DATA_BASE],
  ["CTRL_CACHE_SLOTS", CTRL.CACHE_SLOTS],
  ["CTRL_CACHE_INDEX_BASE", CTRL.CACHE_INDEX_BASE],
  ["CTRL_CACHE_INDEX_SLOTS", CTRL.CACHE_INDEX_SLOTS],
  ["CTRL_CACHE_HEAD", CTRL.CACHE_HEAD],
  ["CTRL_CACHE_TAIL", CTRL.CACHE_TAIL],
  ["CTRL_DEVICE_LOCK", CTRL.DEVICE_LOCK],
  ["CTRL_ARENA_BASE", CTRL.ARENA_BASE],
  ["CTRL_ARENA_BYTES", CTRL.ARENA_BYTES],
  ["CTRL_BATCH_BASE", CTRL.BATCH_BASE],
  ["CTRL_BATCH_CAPACITY", CTRL.BATCH_CAPACITY],
  ["CTRL_NEXT_WRITE_ID", CTRL.NEXT_WRITE_ID],
  ["CTRL_STAT_BIOS", CTRL.STAT_BIOS],
  ["CTRL_STAT_SPLITS", CTRL.STAT_SPLITS],
  ["CTRL_STAT_FLUSHES", CTRL.STAT_FLUSHES],
  ["CTRL_STAT_FUA_WRITES", CTRL.STAT_FUA_WRITES],
  ["CTRL_STAT_BYTES_READ", CTRL.STAT_BYTES_READ],
  ["CTRL_STAT_BYTES_WRITTEN", CTRL.STAT_BYTES_WRITTEN],
  ["CTRL_STAT_DIRTY_BYTES", CTRL.STAT_DIRTY_BYTES],
  ["CTRL_STAT_DESTAGED_BYTES", CTRL.STAT_DESTAGED_BYTES],
  ["CTRL_FS_INODE_BASE", CTRL.FS_INODE_BASE],
  ["CTRL_FS_INODE_CAPACITY", CTRL.FS_INODE_CAPACITY],
  ["CTRL_FS_EXTENT_BASE", CTRL.FS_EXTENT_BASE],
  ["CTRL_FS_EXTENT_CAPACITY", CTRL.FS_EXTENT_CAPACITY],
  ["CTRL_FS_EXTENT_TOP", CTRL.FS_EXTENT_TOP],
  ["CTRL_FS_BITMAP_BASE", CTRL.FS_BITMAP_BASE],
  ["CTRL_FS_BLOCK_COUNT", CTRL.FS_BLOCK_COUNT],
  ["CTRL_FS_FREE_BLOCKS", CTRL.FS_FREE_BLOCKS],
  ["CTRL_FS_SCRATCH_BASE", CTRL.FS_SCRATCH_BASE],
  ["CTRL_FS_SCRATCH_CAPACITY", CTRL.FS_SCRATCH_CAPACITY],
  ["CTRL_FS_ALLOC_HINT", CTRL.FS_ALLOC_HINT],
  ["CTRL_DIO_IOV_BASE", CTRL.DIO_IOV_BASE],
  ["CTRL_DIO_IOV_CAPACITY", CTRL.DIO_IOV_CAPACITY],
  ["CTRL_DIO_BIO_BASE", CTRL.DIO_BIO_BASE],
  ["CTRL_DIO_BIO_CAPACITY", CTRL.DIO_BIO_CAPACITY],
  ["CTRL_DIO_BVEC_BASE", CTRL.DIO_BVEC_BASE],
  ["CTRL_DIO_BVEC_CAPACITY", CTRL.DIO_BVEC_CAPACITY],
  ["CTRL_ZERO_PAGE", CTRL.ZERO_PAGE],
  ["FEATURE_WRITE_CACHE", FEATURE_WRITE_CACHE],
  ["FEATURE_FUA", FEATURE_FUA],
  ["BVEC_ADDR", 0],
  ["BVEC_LEN", 4],
  ["BVEC_SIZE", BVEC_SIZE],
  ["PIECE_SECTOR", 0],
  ["PIECE_SECTORS", 4],
  ["PIECE_BVEC_INDEX", 8],
  ["PIECE_BVEC_DONE", 12],
  ["PIECE_SIZE", PIECE_SIZE],
  ["ENTRY_LINE", 0],
  ["ENTRY_WRITE_ID", 4],
  ["ENTRY_PREV", 8],
  ["ENTRY_MASK", 12],
  ["ENTRY_SIZE", ENTRY_SIZE],
  ["FS_INODE_START", 0],
  ["FS_INODE_COUNT", 4],
  ["FS_INODE_CAPACITY", 8],
  ["FS_INODE_FLAGS", 12],
  ["FS_INODE_SIZE", FS_INODE_SIZE],
  ["FS_EXTENT_FILE", 0],
  ["FS_EXTENT_DISK", 4],
  ["FS_EXTENT_LENGTH", 8],
  ["FS_EXTENT_SIZE", FS_EXTENT_SIZE],
  ["MAP_MAPPED", MAP_MAPPED],
  ["MAP_NEW", MAP_NEW],
  ["MAP_BOUNDARY", MAP_BOUNDARY],
  ["DIO_BIO_SECTOR", DIO_BIO.SECTOR],
  ["DIO_BIO_BVEC_FIRST", DIO_BIO.BVEC_FIRST],
  ["DIO_BIO_BVEC_COUNT", DIO_BIO.BVEC_COUNT],
  ["DIO_BIO_BYTES", DIO_BIO.BYTES],
  ["DIO_BIO_FILE_BLOCK", DIO_BIO.FILE_BLOCK],
  ["DIO_BIO_SIZE", DIO_BIO_SIZE],
  ["INDEX_LINE", 0],
  ["INDEX_POS", 4],
  ["INDEX_SIZE", INDEX_SIZE],
  ["BATCH_OP", BATCH.OP],
  ["BATCH_FLAGS", BATCH.FLAGS],
  ["BATCH_SECTOR", BATCH.SECTOR],
  ["BATCH_BVEC_INDEX", BATCH.BVEC_INDEX],
  ["BATCH_BVEC_COUNT", BATCH.BVEC_COUNT],
  ["BATCH_BYTES", BATCH.BYTES],
  ["BATCH_STATUS", BATCH.STATUS],
  ["BATCH_WRITE_ID", 28],
  ["BATCH_SIZE", BATCH_SIZE],
  ["OP_READ", OP_READ],
  ["OP_WRITE", OP_WRITE],
  ["OP_FLUSH", OP_FLUSH],
  ["BIO_SYNC", BIO_SYNC],
  ["BIO_FUA", BIO_FUA],
  ["BIO_PREFLUSH", BIO_PREFLUSH],
  ["BIO_NOWAIT", BIO_NOWAIT],
  ["BIO_ATOMIC", BIO_ATOMIC],
  ["LINE_SHIFT", 12],
  ["LINE_BYTES", LINE_BYTES],
  ["SECTORS_PER_LINE", 8],
  ["__heap_base", "below-base"],
  ["CTRL_FLUSH_ISSUED", CTRL.FLUSH_ISSUED],
  ["CTRL_DESTAGE_TARGET", CTRL.DESTAGE_TARGET],
  ["CTRL_DESTAGE_ENABLED", CTRL.DESTAGE_ENABLED],
  ["CTRL_DESTAGE_BELL", CTRL.DESTAGE_BELL],
  ["CTRL_DESTAGE_STOP", CTRL.DESTAGE_STOP],
  ["CTRL_DESTAGE_SLEEPING", CTRL.DESTAGE_SLEEPING],
  ["CTRL_DESTAGE_CLAIM", CTRL.DESTAGE_CLAIM],
  ["CTRL_STAT_BYPASS_WRITES", CTRL.STAT_BYPASS_WRITES],
  ["FEATURE_CACHE_BYPASS", FEATURE_CACHE_BYPASS],
  ["CTRL_CACHE_LINE_MAP", CTRL.CACHE_LINE_MAP],
  ["CTRL_SHARE_STATE", CTRL.SHARE_STATE],
  ["CTRL_SHARE_SRC", CTRL.SHARE_SRC],
  ["CTRL_SHARE_DST", CTRL.SHARE_DST],
  ["CTRL_SHARE_BYTES", CTRL.SHARE_BYTES],
  ["CTRL_SHARE_READY", CTRL.SHARE_READY],
  ["CTRL_SHARE_NEXT", CTRL.SHARE_NEXT],
  ["CTRL_SHARE_JOINED", CTRL.SHARE_JOINED],
  ["CTRL_SHARE_WAKE", CTRL.SHARE_WAKE],
];

/** Capacities fixed at setup (STYLE: a limit on everything). */
export const BVEC_CAPACITY = 65536;
export const PIECE_CAPACITY = 32768;
export const BATCH_CAPACITY = 1024;
/** The largest bio the block layer accepts, in bytes, and its most segments (BIO_MAX_VECS). */
export const BIO_BYTES_MAX = 16 << 20;
export const BIO_VECS_MAX = 256;

const WASM_PAGE_BYTES = 65536;
const WASM_PAGES_MAX = 65536;

export interface RegionPlan {
  bvecBase: number; pieceBase: number; batchBase: number;
  dioIovBase: number; dioBioBase: number; dioBvecBase: number;
  fsInodeBase: number; fsInodeCapacity: number; fsExtentBase: number; fsExtentCapacity: number;
  fsBitmapBase: number; fsBitmapBlocks: number; fsScratchBase: number; fsScratchCapacity: number;
  cacheHeaderBase: number; cacheDataBase: number; cacheSlots: number;
  cacheIndexBase: number; cacheIndexSlots: number;
  /** A bit per 4 KiB line of the image: set while the cache index holds the line. */
  cacheLineMap: number;
  /** The shared page of zeros, just below the arena (the core's arena bounds include it). */
  zeroPageBase: number;
  arenaBase: number; arenaBytes: number;
  imageBase: number; imageBytes: number;
  totalBytes: number; pages: number;
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** The largest power of two ≤ value (value ≥ 1). */
export function powerOfTwoFloor(value: number): number {
  return 2 ** Math.floor(Math.log2(value));
}

/**
 * Places every region for a disk of `imageBytes` with a cache of `cacheBytes` (0 = no cache)
 * and an IO-buffer arena of `arenaBytes`. Returns null when it does not fit in wasm32 memory.
 */
export function planRegions(imageBytes: number, cacheBytes: number, arenaBytes: number): RegionPlan | null {
  let at = LAYOUT_BASE + CTRL_BYTES;
  const take = (bytes: number, alignment = 4096): number => {
    const base = alignUp(at, alignment);
    at = base + bytes;
    return base;
  };
  const cacheSlots = cacheBytes > 0 ? powerOfTwoFloor(cacheBytes / LINE_BYTES) : 0;
  const cacheIndexSlots = cacheSlots * 2;
  const bvecBase = take(BVEC_CAPACITY * BVEC_SIZE);
  const pieceBase = take(PIECE_CAPACITY * PIECE_SIZE);
  const batchBase = take(BATCH_CAPACITY * BATCH_SIZE);
  const dioIovBase = take(DIO_IOV_CAPACITY * BVEC_SIZE);
  const dioBioBase = take(DIO_BIO_CAPACITY * DIO_BIO_SIZE);
  const dioBvecBase = take(DIO_BVEC_CAPACITY * BVEC_SIZE);
  // Room for any filesystem mkfs may put on this disk: the smallest block size gives the most
  // blocks, and a pool of twice that many extents always fits every map after compaction.
  const fsBitmapBlocks = Math.floor(imageBytes / FS_BLOCK_MIN);
  const fsInodeCapacity = FS_INODES_MAX;
  const fsExtentCapacity = 2 * fsBitmapBlocks + 1024;
  const fsScratchCapacity = Math.ceil((fsInodeCapacity * 8) / FS_EXTENT_SIZE);
  const fsInodeBase = take(fsInodeCapacity * FS_INODE_SIZE);
  const fsExtentBase = take(fsExtentCapacity * FS_EXTENT_SIZE);
  const fsBitmapBase = take(Math.ceil(fsBitmapBlocks / 32) * 4);
  const fsScratchBase = take(fsScratchCapacity * FS_EXTENT_SIZE);
  const cacheHeaderBase = take(cacheSlots * ENTRY_SIZE);
  const cacheIndexBase = take(cacheIndexSlots * INDEX_SIZE);
  const cacheLineMap = take(cacheSlots > 0 ? Math.ceil(Math.ceil(imageBytes / LINE_BYTES) / 32) * 4 : 0);
  const cacheDataBase = take(cacheSlots * LINE_BYTES);
  const zeroPageBase = take(4096 + arenaBytes);
  const arenaBase = zeroPageBase + 4096;
  const imageBase = take(imageBytes);
  const totalBytes = at;
  const pages = Math.ceil(totalBytes / WASM_PAGE_BYTES);
  if (pages > WASM_PAGES_MAX || imageBase + imageBytes > 2 ** 32) return null;
  return {
    bvecBase, pieceBase, batchBase, dioIovBase, dioBioBase, dioBvecBase, fsInodeBase, fsInodeCapacity, fsExtentBase, fsExtentCapacity,
    fsBitmapBase, fsBitmapBlocks, fsScratchBase, fsScratchCapacity, cacheHeaderBase, cacheDataBase, cacheSlots, cacheIndexBase,
    cacheIndexSlots, cacheLineMap, zeroPageBase, arenaBase, arenaBytes, imageBase, imageBytes, totalBytes, pages,
  };
}
