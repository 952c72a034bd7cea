// The one shared-memory map of a dioemu disk, as the core sees it. The host has its own copy
// (host/layout.ts) and compares it with `layout_value()` at load time, field by field.
//
//   0          LAYOUT_BASE (64 KiB)                                                    memory end
//   +----------+---------+-------------+-------------+--------------+-----------+-------+-------+
//   | core     | control | bvec pool   | piece table | cache slot   | cache     | arena | image |
//   | statics  | block   | BVEC_SIZE × | PIECE_SIZE ×| headers +    | index     | (IO   | (the  |
//   | (asc)    | 4 KiB   | capacity    | capacity    | 4 KiB data   | (hash)    | bufs) | disk) |
//   +----------+---------+-------------+-------------+--------------+-----------+-------+-------+
//
// Region bases after the control block are chosen by the host when it creates the memory (they
// depend on the disk's size and options) and written into the control block; every thread's core
// instance reads them at `core_attach()`. All offsets are bytes; every field is little-endian.

export const LAYOUT_MAGIC: u32 = 0x454f4944; // "DIOE"
export const LAYOUT_VERSION: u32 = 1;
/** Where the control block starts: everything below belongs to the compiler's static data. */
export const LAYOUT_BASE: u32 = 65536;
export const CTRL_BYTES: u32 = 4096;

// Control block fields: byte offsets from LAYOUT_BASE.
export const CTRL_MAGIC: u32 = 0;
export const CTRL_VERSION: u32 = 4;
export const CTRL_IMAGE_BASE: u32 = 8;
export const CTRL_IMAGE_BYTES: u32 = 12;
export const CTRL_SECTOR_COUNT: u32 = 16;
export const CTRL_LOGICAL_BLOCK: u32 = 20;    // bytes
export const CTRL_PHYSICAL_BLOCK: u32 = 24;   // bytes
export const CTRL_MAX_SECTORS: u32 = 28;
export const CTRL_MAX_SEGMENTS: u32 = 32;
export const CTRL_MAX_SEGMENT_SIZE: u32 = 36; // bytes
export const CTRL_SEG_BOUNDARY_MASK: u32 = 40;
export const CTRL_VIRT_BOUNDARY_MASK: u32 = 44;
export const CTRL_CHUNK_SECTORS: u32 = 48;
export const CTRL_FEATURES: u32 = 52;         // FEATURE_* bits
export const CTRL_BVEC_BASE: u32 = 56;
export const CTRL_BVEC_CAPACITY: u32 = 60;    // records
export const CTRL_PIECE_BASE: u32 = 64;
export const CTRL_PIECE_CAPACITY: u32 = 68;   // records
export const CTRL_CACHE_HEADER_BASE: u32 = 72;
export const CTRL_CACHE_DATA_BASE: u32 = 76;
export const CTRL_CACHE_SLOTS: u32 = 80;      // a power of two
export const CTRL_CACHE_INDEX_BASE: u32 = 84;
export const CTRL_CACHE_INDEX_SLOTS: u32 = 88; // a power of two
export const CTRL_CACHE_HEAD: u32 = 92;       // free-running log position of the next append
export const CTRL_CACHE_TAIL: u32 = 96;       // free-running log position of the oldest entry
export const CTRL_DEVICE_LOCK: u32 = 100;     // 0 free, 1 held
export const CTRL_ARENA_BASE: u32 = 104;
export const CTRL_ARENA_BYTES: u32 = 108;
export const CTRL_BATCH_BASE: u32 = 112;      // bio records for blk_run_batch()
export const CTRL_BATCH_CAPACITY: u32 = 116;  // records
export const CTRL_NEXT_WRITE_ID: u32 = 120;   // last write-request id handed out
export const CTRL_FLUSH_ISSUED: u32 = 124;    // the log position the newest flush issued covers up to
// Statistics, u64 each.
export const CTRL_STAT_BIOS: u32 = 128;
export const CTRL_STAT_SPLITS: u32 = 136;
export const CTRL_STAT_FLUSHES: u32 = 144;
export const CTRL_STAT_FUA_WRITES: u32 = 152;
export const CTRL_STAT_BYTES_READ: u32 = 160;
export const CTRL_STAT_BYTES_WRITTEN: u32 = 168;
export const CTRL_STAT_DIRTY_BYTES: u32 = 176;
export const CTRL_STAT_DESTAGED_BYTES: u32 = 184;

// Filesystem mapping regions (assembly/fs.ts), set by the host at mount.
export const CTRL_FS_INODE_BASE: u32 = 192;
export const CTRL_FS_INODE_CAPACITY: u32 = 196;  // slots (inode numbers 1..capacity-1)
export const CTRL_FS_EXTENT_BASE: u32 = 200;
export const CTRL_FS_EXTENT_CAPACITY: u32 = 204; // records
export const CTRL_FS_EXTENT_TOP: u32 = 208;      // records handed out from the pool's bottom
export const CTRL_FS_BITMAP_BASE: u32 = 212;
export const CTRL_FS_BLOCK_COUNT: u32 = 216;     // fs blocks the bitmap covers
export const CTRL_FS_FREE_BLOCKS: u32 = 220;
export const CTRL_FS_SCRATCH_BASE: u32 = 224;
export const CTRL_FS_SCRATCH_CAPACITY: u32 = 228; // extent-sized records
export const CTRL_FS_ALLOC_HINT: u32 = 232;      // where the next new file's allocation starts
// Direct-IO mapping tables (assembly/dio.ts), set by the host at Disk.create.
export const CTRL_DIO_IOV_BASE: u32 = 240;      // the user's segments (bvec records)
export const CTRL_DIO_IOV_CAPACITY: u32 = 244;
export const CTRL_DIO_BIO_BASE: u32 = 248;      // bios built by the mapping loop
export const CTRL_DIO_BIO_CAPACITY: u32 = 252;
export const CTRL_DIO_BVEC_BASE: u32 = 256;     // their segments (bvec records)
export const CTRL_DIO_BVEC_CAPACITY: u32 = 260;
export const CTRL_ZERO_PAGE: u32 = 264;         // a 4 KiB page of zeros in the arena (ZERO_PAGE)
// Background destaging (device.ts): log entries before the target are released to be written
// back whole by any thread; the host enables it when a destager thread may run.
export const CTRL_DESTAGE_TARGET: u32 = 268;    // free-running log position
export const CTRL_DESTAGE_ENABLED: u32 = 272;   // 0 or 1
export const CTRL_DESTAGE_BELL: u32 = 276;      // the destager thread sleeps on it (host only)
export const CTRL_DESTAGE_STOP: u32 = 280;      // 1 asks the destager thread to stop (host only)
export const CTRL_DESTAGE_SLEEPING: u32 = 284;  // 1 while the destager thread sleeps (host only)
export const CTRL_DESTAGE_CLAIM: u32 = 288;     // log entries [tail, claim) are being written back
// More statistics (u64), after the first eight.
export const CTRL_STAT_BYPASS_WRITES: u32 = 296; // write requests that went past a full cache to the media
export const CTRL_CACHE_LINE_MAP: u32 = 304;   // a bit per line of the image: set while it is indexed
// A large copy to the media shared with the destager thread (device.ts, "sharing a large copy").
export const CTRL_SHARE_STATE: u32 = 308;      // SHARE_* below
export const CTRL_SHARE_SRC: u32 = 312;
export const CTRL_SHARE_DST: u32 = 316;
export const CTRL_SHARE_BYTES: u32 = 320;
export const CTRL_SHARE_READY: u32 = 324;      // 1 while the destager thread takes shares
export const CTRL_SHARE_NEXT: u32 = 328;       // offset of the next half either thread may take
export const CTRL_SHARE_JOINED: u32 = 332;     // shares the destager thread joined (a counter)
export const CTRL_SHARE_WAKE: u32 = 336;       // 1: the destager thread was woken for a share
export const SHARE_IDLE: u32 = 0;
export const SHARE_POSTED: u32 = 1;
export const SHARE_TAKEN: u32 = 2;
export const SHARE_DONE: u32 = 3;

export const FEATURE_WRITE_CACHE: u32 = 1;
export const FEATURE_FUA: u32 = 2;
export const FEATURE_CACHE_BYPASS: u32 = 4;

// bvec record: one (address, length) segment of a bio, like struct bio_vec with the page and
// offset folded into one address in the shared memory.
export const BVEC_ADDR: u32 = 0;
export const BVEC_LEN: u32 = 4;
export const BVEC_SIZE: u32 = 8;

// piece record: one request produced by splitting a bio (bio_split_rw output).
export const PIECE_SECTOR: u32 = 0;
export const PIECE_SECTORS: u32 = 4;
export const PIECE_BVEC_INDEX: u32 = 8;  // bvec where the piece's data starts
export const PIECE_BVEC_DONE: u32 = 12;  // bytes of that bvec already used by earlier pieces
export const PIECE_SIZE: u32 = 16;

// cache log entry header: one 4 KiB line's worth of one write, held in the volatile cache.
export const ENTRY_LINE: u32 = 0;      // line number (LINE_BYTES units)
export const ENTRY_WRITE_ID: u32 = 4;  // the write request that produced it
export const ENTRY_PREV: u32 = 8;      // log position of the next older entry for the same line
export const ENTRY_MASK: u32 = 12;     // bit i = sector i of the line is held here
export const ENTRY_SIZE: u32 = 16;

// fs inode slot: where an inode's extents live in the pool.
export const FS_INODE_START: u32 = 0;     // extent index
export const FS_INODE_COUNT: u32 = 4;
export const FS_INODE_CAPACITY: u32 = 8;
export const FS_INODE_FLAGS: u32 = 12;    // 1 = in use
export const FS_INODE_SIZE: u32 = 16;
// fs extent: file blocks [file, file + length) live at disk blocks [disk, disk + length).
export const FS_EXTENT_FILE: u32 = 0;
export const FS_EXTENT_DISK: u32 = 4;
export const FS_EXTENT_LENGTH: u32 = 8;
export const FS_EXTENT_SIZE: u32 = 12;
// get_block() result flags.
export const MAP_MAPPED: u32 = 1;
export const MAP_NEW: u32 = 2;
export const MAP_BOUNDARY: u32 = 4;

// dio bio record: one bio the mapping loop built.
export const DIO_BIO_SECTOR: u32 = 0;
export const DIO_BIO_BVEC_FIRST: u32 = 4;  // index in the dio bvec table
export const DIO_BIO_BVEC_COUNT: u32 = 8;
export const DIO_BIO_BYTES: u32 = 12;
export const DIO_BIO_FILE_BLOCK: u32 = 16; // file offset of its first byte, in dio blocks
export const DIO_BIO_SIZE: u32 = 20;

// cache index entry: open-addressed hash from line number to its newest log position.
export const INDEX_LINE: u32 = 0;
export const INDEX_POS: u32 = 4;
export const INDEX_SIZE: u32 = 8;
export const INDEX_EMPTY: u32 = 0xffffffff;

// batch bio record (blk_run_batch): a whole bio described in memory, status written back.
export const BATCH_OP: u32 = 0;        // OP_*
export const BATCH_FLAGS: u32 = 4;     // BIO_*
export const BATCH_SECTOR: u32 = 8;
export const BATCH_BVEC_INDEX: u32 = 12;
export const BATCH_BVEC_COUNT: u32 = 16;
export const BATCH_BYTES: u32 = 20;
export const BATCH_STATUS: u32 = 24;   // 0 or -errno, written by the core
export const BATCH_WRITE_ID: u32 = 28;
export const BATCH_SIZE: u32 = 32;

export const OP_READ: u32 = 0;
export const OP_WRITE: u32 = 1;
export const OP_FLUSH: u32 = 2;

export const BIO_SYNC: u32 = 1;
export const BIO_FUA: u32 = 2;
export const BIO_PREFLUSH: u32 = 4;
export const BIO_NOWAIT: u32 = 8;
export const BIO_ATOMIC: u32 = 16;

export const SECTOR_SHIFT: u32 = 9;
export const SECTOR_BYTES: u32 = 512;
export const PAGE_SHIFT: u32 = 12;
export const PAGE_BYTES: u32 = 4096;
export const LINE_SHIFT: u32 = 12;
export const LINE_BYTES: u32 = 4096;
export const SECTORS_PER_LINE: u32 = 8;

export const ENOMEM: i32 = 12;
export const EIO: i32 = 5;
export const EAGAIN: i32 = 11;
export const EINVAL: i32 = 22;
export const ENOSPC: i32 = 28;
export const EUCLEAN: i32 = 117;

/** The fields the host checks at load time, in a fixed order (host/layout.ts names them):
 *  every offset, record size and shared constant of this file. */
export function layoutValue(index: i32): u32 {
  switch (index) {
    case 0: return LAYOUT_MAGIC;
    case 1: return LAYOUT_VERSION;
    case 2: return LAYOUT_BASE;
    case 3: return CTRL_BYTES;
    case 4: return CTRL_MAGIC;
    case 5: return CTRL_VERSION;
    case 6: return CTRL_IMAGE_BASE;
    case 7: return CTRL_IMAGE_BYTES;
    case 8: return CTRL_SECTOR_COUNT;
    case 9: return CTRL_LOGICAL_BLOCK;
    case 10: return CTRL_PHYSICAL_BLOCK;
    case 11: return CTRL_MAX_SECTORS;
    case 12: return CTRL_MAX_SEGMENTS;
    case 13: return CTRL_MAX_SEGMENT_SIZE;
    case 14: return CTRL_SEG_BOUNDARY_MASK;
    case 15: return CTRL_VIRT_BOUNDARY_MASK;
    case 16: return CTRL_CHUNK_SECTORS;
    case 17: return CTRL_FEATURES;
    case 18: return CTRL_BVEC_BASE;
    case 19: return CTRL_BVEC_CAPACITY;
    case 20: return CTRL_PIECE_BASE;
    case 21: return CTRL_PIECE_CAPACITY;
    case 22: return CTRL_CACHE_HEADER_BASE;
    case 23: return CTRL_CACHE_DATA_BASE;
    case 24: return CTRL_CACHE_SLOTS;
    case 25: return CTRL_CACHE_INDEX_BASE;
    case 26: return CTRL_CACHE_INDEX_SLOTS;
    case 27: return CTRL_CACHE_HEAD;
    case 28: return CTRL_CACHE_TAIL;
    case 29: return CTRL_DEVICE_LOCK;
    case 30: return CTRL_ARENA_BASE;
    case 31: return CTRL_ARENA_BYTES;
    case 32: return CTRL_BATCH_BASE;
    case 33: return CTRL_BATCH_CAPACITY;
    case 34: return CTRL_NEXT_WRITE_ID;
    case 35: return CTRL_STAT_BIOS;
    case 36: return CTRL_STAT_SPLITS;
    case 37: return CTRL_STAT_FLUSHES;
    case 38: return CTRL_STAT_FUA_WRITES;
    case 39: return CTRL_STAT_BYTES_READ;
    case 40: return CTRL_STAT_BYTES_WRITTEN;
    case 41: return CTRL_STAT_DIRTY_BYTES;
    case 42: return CTRL_STAT_DESTAGED_BYTES;
    case 43: return CTRL_FS_INODE_BASE;
    case 44: return CTRL_FS_INODE_CAPACITY;
    case 45: return CTRL_FS_EXTENT_BASE;
    case 46: return CTRL_FS_EXTENT_CAPACITY;
    case 47: return CTRL_FS_EXTENT_TOP;
    case 48: return CTRL_FS_BITMAP_BASE;
    case 49: return CTRL_FS_BLOCK_COUNT;
    case 50: return CTRL_FS_FREE_BLOCKS;
    case 51: return CTRL_FS_SCRATCH_BASE;
    case 52: return CTRL_FS_SCRATCH_CAPACITY;
    case 53: return CTRL_FS_ALLOC_HINT;
    case 54: return CTRL_DIO_IOV_BASE;
    case 55: return CTRL_DIO_IOV_CAPACITY;
    case 56: return CTRL_DIO_BIO_BASE;
    case 57: return CTRL_DIO_BIO_CAPACITY;
    case 58: return CTRL_DIO_BVEC_BASE;
    case 59: return CTRL_DIO_BVEC_CAPACITY;
    case 60: return CTRL_ZERO_PAGE;
    case 61: return FEATURE_WRITE_CACHE;
    case 62: return FEATURE_FUA;
    case 63: return BVEC_ADDR;
    case 64: return BVEC_LEN;
    case 65: return BVEC_SIZE;
    case 66: return PIECE_SECTOR;
    case 67: return PIECE_SECTORS;
    case 68: return PIECE_BVEC_INDEX;
    case 69: return PIECE_BVEC_DONE;
    case 70: return PIECE_SIZE;
    case 71: return ENTRY_LINE;
    case 72: return ENTRY_WRITE_ID;
    case 73: return ENTRY_PREV;
    case 74: return ENTRY_MASK;
    case 75: return ENTRY_SIZE;
    case 76: return FS_INODE_START;
    case 77: return FS_INODE_COUNT;
    case 78: return FS_INODE_CAPACITY;
    case 79: return FS_INODE_FLAGS;
    case 80: return FS_INODE_SIZE;
    case 81: return FS_EXTENT_FILE;
    case 82: return FS_EXTENT_DISK;
    case 83: return FS_EXTENT_LENGTH;
    case 84: return FS_EXTENT_SIZE;
    case 85: return MAP_MAPPED;
    case 86: return MAP_NEW;
    case 87: return MAP_BOUNDARY;
    case 88: return DIO_BIO_SECTOR;
    case 89: return DIO_BIO_BVEC_FIRST;
    case 90: return DIO_BIO_BVEC_COUNT;
    case 91: return DIO_BIO_BYTES;
    case 92: return DIO_BIO_FILE_BLOCK;
    case 93: return DIO_BIO_SIZE;
    case 94: return INDEX_LINE;
    case 95: return INDEX_POS;
    case 96: return INDEX_SIZE;
    case 97: return BATCH_OP;
    case 98: return BATCH_FLAGS;
    case 99: return BATCH_SECTOR;
    case 100: return BATCH_BVEC_INDEX;
    case 101: return BATCH_BVEC_COUNT;
    case 102: return BATCH_BYTES;
    case 103: return BATCH_STATUS;
    case 104: return BATCH_WRITE_ID;
    case 105: return BATCH_SIZE;
    case 106: return OP_READ;
    case 107: return OP_WRITE;
    case 108: return OP_FLUSH;
    case 109: return BIO_SYNC;
    case 110: return BIO_FUA;
    case 111: return BIO_PREFLUSH;
    case 112: return BIO_NOWAIT;
    case 113: return BIO_ATOMIC;
    case 114: return LINE_SHIFT;
    case 115: return LINE_BYTES;
    case 116: return SECTORS_PER_LINE;
    case 117: return <u32>__heap_base; // static data must end below LAYOUT_BASE
    case 118: return CTRL_FLUSH_ISSUED;
    case 119: return CTRL_DESTAGE_TARGET;
    case 120: return CTRL_DESTAGE_ENABLED;
    case 121: return CTRL_DESTAGE_BELL;
    case 122: return CTRL_DESTAGE_STOP;
    case 123: return CTRL_DESTAGE_SLEEPING;
    case 124: return CTRL_DESTAGE_CLAIM;
    case 125: return CTRL_STAT_BYPASS_WRITES;
    case 126: return FEATURE_CACHE_BYPASS;
    case 127: return CTRL_CACHE_LINE_MAP;
    case 128: return CTRL_SHARE_STATE;
    case 129: return CTRL_SHARE_SRC;
    case 130: return CTRL_SHARE_DST;
    case 131: return CTRL_SHARE_BYTES;
    case 132: return CTRL_SHARE_READY;
    case 133: return CTRL_SHARE_NEXT;
    case 134: return CTRL_SHARE_JOINED;
    case 135: return CTRL_SHARE_WAKE;
    default: return 0xffffffff;
  }
}
export const LAYOUT_FIELD_COUNT: i32 = 136;
