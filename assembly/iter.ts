// A cursor over a bio's bvecs (like struct bvec_iter): copies between the bio's segments and a
// contiguous range of memory. Every segment is checked to lie inside the IO-buffer arena before a
// byte moves.
import { arenaBase, arenaEnd, bvecCapacity } from "./state";
import { bvecAddr, bvecLen } from "./split";

export let iterIndex: u32 = 0;
export let iterDone: u32 = 0;
/** Set when a segment was found outside the arena; the copy stops and the caller fails the IO. */
export let iterFault: bool = false;

export function iterStart(index: u32, done: u32): void {
  iterIndex = index;
  iterDone = done;
  iterFault = false;
}

/** Checks that bvecs [index, index + count) lie in the arena and add up to `bytes` past `done`. */
export function bvecsValid(index: u32, count: u32, done: u32, bytes: u32): bool {
  if (count == 0 || <u64>index + count > <u64>bvecCapacity) return false;
  let total: u64 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const addr = bvecAddr(index + i);
    const len = bvecLen(index + i);
    if (len == 0) return false;
    if (addr < arenaBase || <u64>addr + len > <u64>arenaEnd) return false;
    total += len;
  }
  return <u64>done < <u64>bvecLen(index) && total - done == <u64>bytes;
}

/**
 * Checks that `bytes` bytes starting `done` into bvec `index` lie in bvecs inside the pool, each
 * inside the arena: what a request handed to the device must satisfy before memory is touched.
 */
export function bvecRangeValid(index: u32, done: u32, bytes: u32): bool {
  let i = index;
  let skip = done;
  let left = bytes;
  while (left != 0) {
    if (i >= bvecCapacity) return false;
    const addr = bvecAddr(i);
    const len = bvecLen(i);
    if (len == 0 || skip >= len) return false;
    if (addr < arenaBase || <u64>addr + len > <u64>arenaEnd) return false;
    const part = len - skip < left ? len - skip : left;
    left -= part;
    skip = 0;
    i++;
  }
  return true;
}

/**
 * Takes up to `bytes` from the cursor as one run of memory: consecutive segments that continue one
 * another in memory (a buffer split into pages) make one run, so that one memory.copy moves it.
 * Returns the run's length and leaves its address in `runAddr`; 0 (with iterFault) when the
 * segment at the cursor lies outside the arena.
 */
let runAddr: usize = 0;
function takeRun(bytes: u32): u32 {
  let run: u32 = 0;
  while (run < bytes) {
    const addr = bvecAddr(iterIndex);
    const len = bvecLen(iterIndex);
    if (addr < arenaBase || <u64>addr + len > <u64>arenaEnd || iterDone >= len) {
      if (run == 0) iterFault = true;
      break;
    }
    const at = <usize>(addr + iterDone);
    if (run == 0) runAddr = at;
    else if (at != runAddr + run) break;
    let chunk = len - iterDone;
    if (chunk > bytes - run) chunk = bytes - run;
    run += chunk;
    iterDone += chunk;
    if (iterDone == len) {
      iterIndex++;
      iterDone = 0;
    }
  }
  return run;
}

/** When the next `bytes` at the cursor are one run of memory: takes them and returns their
 *  address; otherwise 0, with the cursor left where it was. */
export function iterTakeWhole(bytes: u32): usize {
  const index = iterIndex;
  const done = iterDone;
  if (takeRun(bytes) == bytes) return runAddr;
  iterIndex = index;
  iterDone = done;
  iterFault = false;
  return 0;
}

/** Copies `bytes` between the bio's segments at the cursor and `mem` (out of the segments when
 *  `out`, into them otherwise), advancing the cursor. */
function iterCopy(mem: usize, bytes: u32, out: bool): void {
  while (bytes != 0) {
    const run = takeRun(bytes);
    if (run == 0) return;
    if (out) memory.copy(mem, runAddr, run);
    else memory.copy(runAddr, mem, run);
    mem += run;
    bytes -= run;
  }
}

/** Copies `bytes` from the bio's segments at the cursor to `dst`, advancing the cursor. */
export function iterCopyOut(dst: usize, bytes: u32): void {
  iterCopy(dst, bytes, true);
}

/** Copies `bytes` from `src` into the bio's segments at the cursor, advancing the cursor. */
export function iterCopyIn(src: usize, bytes: u32): void {
  iterCopy(src, bytes, false);
}

/** Moves the cursor `bytes` forward without copying. */
export function iterSkip(bytes: u32): void {
  while (bytes != 0) {
    const len = bvecLen(iterIndex);
    if (iterDone >= len) {
      iterFault = true;
      return;
    }
    let chunk = len - iterDone;
    if (chunk > bytes) chunk = bytes;
    bytes -= chunk;
    iterDone += chunk;
    if (iterDone >= len) {
      iterIndex++;
      iterDone = 0;
    }
  }
}
