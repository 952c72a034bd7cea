// Performing the split: turns one bio into the requests that meet the queue limits, writing
// them to the piece table for the host to trace and dispatch. see: block/blk-merge.c
// bio_split_rw(), bio_submit_split(); the decision itself is splitBytes() in split.ts.
import {
  EINVAL, EIO, ENOSPC, OP_READ, OP_WRITE, PIECE_BVEC_DONE,
  PIECE_BVEC_INDEX, PIECE_SECTOR, PIECE_SECTORS, PIECE_SIZE, SECTOR_SHIFT, CTRL_STAT_BIOS,
  CTRL_STAT_SPLITS,
} from "./layout";
import { ctrlAddr, logicalBlockBytes, pieceBase, pieceCapacity, sectorCount } from "./state";
import { bioFitsOnePage, splitBytes } from "./split";
import { bvecsValid, iterDone, iterIndex, iterSkip, iterStart } from "./iter";

/** -errno of the last splitBio()'s remainder that could not be split, or 0 (per thread). */
export let splitTailStatus: i32 = 0;

function writePiece(slot: u32, sector: u32, sectors: u32, index: u32, done: u32): void {
  const addr = <usize>(pieceBase + slot * PIECE_SIZE);
  store<u32>(addr + PIECE_SECTOR, sector);
  store<u32>(addr + PIECE_SECTORS, sectors);
  store<u32>(addr + PIECE_BVEC_INDEX, index);
  store<u32>(addr + PIECE_BVEC_DONE, done);
}

/**
 * Checks a read or write bio and splits it to the limits. The pieces go to the piece table from
 * slot `firstSlot`. Returns the number of pieces, or -errno: -EINVAL for a malformed bio or a
 * refused ATOMIC split, -EAGAIN for a NOWAIT bio that needs a split, -EIO past the end of the
 * device, -ENOSPC when the piece table is too small. When a later remainder cannot be split (its
 * front rounds down to nothing) the pieces before it still go out, as in the kernel, and the
 * remainder's -errno is left in splitTailStatus (0 otherwise).
 */
export function splitBio(op: u32, flags: u32, sector: u32, index: u32, count: u32, done: u32, bytes: u32, firstSlot: u32): i32 {
  if (op != OP_READ && op != OP_WRITE) return -EINVAL;
  if (bytes == 0 || (bytes & (logicalBlockBytes - 1)) != 0) return -EINVAL;
  if ((sector & ((logicalBlockBytes >> SECTOR_SHIFT) - 1)) != 0) return -EINVAL;
  if (!bvecsValid(index, count, done, bytes)) return -EINVAL;
  atomic.add<u64>(ctrlAddr(CTRL_STAT_BIOS), 1);
  // see: bio_check_eod(): a bio past the end of the device fails whole, touching nothing.
  if (<u64>sector + (<u64>bytes >> SECTOR_SHIFT) > <u64>sectorCount) return -EIO;
  splitTailStatus = 0;
  const onePage = bioFitsOnePage(index, count);
  let pieces: u32 = 0;
  let s = sector;
  let left = bytes;
  let i = index;
  let d = done;
  while (true) {
    if (firstSlot + pieces >= pieceCapacity) return -ENOSPC;
    const front = splitBytes(s, i, d, left, flags, onePage);
    if (front < 0) {
      if (pieces == 0) return front;
      splitTailStatus = front;
      break;
    }
    if (front == 0) {
      writePiece(firstSlot + pieces, s, left >> SECTOR_SHIFT, i, d);
      pieces++;
      break;
    }
    writePiece(firstSlot + pieces, s, <u32>front >> SECTOR_SHIFT, i, d);
    pieces++;
    // The remainder is resubmitted and goes through the same decision again.
    iterStart(i, d);
    iterSkip(<u32>front);
    i = iterIndex;
    d = iterDone;
    s += <u32>front >> SECTOR_SHIFT;
    left -= <u32>front;
  }
  atomic.add<u64>(ctrlAddr(CTRL_STAT_SPLITS), <u64>(pieces - 1));
  return <i32>pieces;
}
