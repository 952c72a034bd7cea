// The device: a disk image (the durable media) behind a volatile write cache. The cache is a log
// of 4 KiB lines in completion order, with a hash index from line to its newest entry; a flush
// destages the log up to the position it was issued at, so it covers exactly the writes that had
// completed by then. Reads overlay the newest cached version of each sector on the image.
// see: Documentation/block/writeback_cache_control.rst for what FLUSH and FUA promise.
import {
  CTRL_CACHE_HEAD, CTRL_CACHE_TAIL, CTRL_DESTAGE_BELL, CTRL_DESTAGE_CLAIM, CTRL_DESTAGE_ENABLED,
  CTRL_DESTAGE_SLEEPING, CTRL_DESTAGE_TARGET, CTRL_DEVICE_LOCK, CTRL_FLUSH_ISSUED,
  CTRL_NEXT_WRITE_ID, CTRL_SHARE_BYTES, CTRL_SHARE_DST, CTRL_SHARE_JOINED, CTRL_SHARE_NEXT,
  CTRL_SHARE_READY, CTRL_SHARE_SRC, CTRL_SHARE_STATE, CTRL_SHARE_WAKE, CTRL_STAT_BYPASS_WRITES,
  CTRL_STAT_BYTES_READ, CTRL_STAT_BYTES_WRITTEN, CTRL_STAT_DESTAGED_BYTES, CTRL_STAT_DIRTY_BYTES,
  CTRL_STAT_FLUSHES, CTRL_STAT_FUA_WRITES, ENTRY_LINE, ENTRY_MASK, ENTRY_PREV, ENTRY_SIZE,
  ENTRY_WRITE_ID, EIO, EINVAL, FEATURE_CACHE_BYPASS, FEATURE_WRITE_CACHE, INDEX_EMPTY, INDEX_LINE,
  INDEX_POS, INDEX_SIZE, LINE_SHIFT, SECTOR_BYTES, SECTOR_SHIFT, SECTORS_PER_LINE, SHARE_DONE,
  SHARE_IDLE, SHARE_POSTED, SHARE_TAKEN,
} from "./layout";
import {
  cacheDataBase, cacheHeaderBase, cacheIndexBase, cacheIndexSlots, cacheLineMap, cacheSlots, ctrlAddr,
  features, imageBase, lineMapBytes, sectorCount,
} from "./state";
import { bvecRangeValid, iterCopyIn, iterCopyOut, iterFault, iterSkip, iterStart, iterTakeWhole } from "./iter";

// ---- lock -------------------------------------------------------------------------------------

/** Spins before a held lock is taken to be abandoned (a holder that trapped): then trap too. */
const LOCK_SPINS_MAX: u32 = 1 << 30;

/** Takes the device lock: every thread's core instance mutates the cache only while holding it. */
function lockDevice(): void {
  // Acquire: the cmpxchg orders this thread's later loads after the previous holder's stores.
  // A browser page's main thread may not block, so the wait is a spin; holders are short, and
  // every request is validated before the lock is taken, so no holder traps.
  for (let spins: u32 = 0; atomic.cmpxchg<u32>(ctrlAddr(CTRL_DEVICE_LOCK), 0, 1) != 0; spins++) {
    if (spins == LOCK_SPINS_MAX) unreachable();
  }
}
function unlockDevice(): void {
  // Release: publishes every cache store made under the lock to the next holder.
  atomic.store<u32>(ctrlAddr(CTRL_DEVICE_LOCK), 0);
}

// The device's counters change only under the device lock, so a plain add is whole; readers on
// other threads use an atomic load of the aligned u64, which a plain aligned store never tears.
@inline function statAdd(field: u32, value: u64): void {
  store<u64>(ctrlAddr(field), load<u64>(ctrlAddr(field)) + value);
}
@inline function statSub(field: u32, value: u64): void {
  store<u64>(ctrlAddr(field), load<u64>(ctrlAddr(field)) - value);
}

/** A fresh id for one write request (the unit a non-torn power cut keeps or loses); under the lock. */
function nextWriteId(): u32 {
  const id = load<u32>(ctrlAddr(CTRL_NEXT_WRITE_ID)) + 1;
  store<u32>(ctrlAddr(CTRL_NEXT_WRITE_ID), id);
  return id;
}

// ---- the log ----------------------------------------------------------------------------------

/** The mask of a whole line: every sector of it. */
const FULL_LINE_MASK: u32 = <u32>((<u64>1 << SECTORS_PER_LINE) - 1);

@inline function cacheHead(): u32 { return load<u32>(ctrlAddr(CTRL_CACHE_HEAD)); }
@inline function cacheTail(): u32 { return load<u32>(ctrlAddr(CTRL_CACHE_TAIL)); }
@inline function entryAddr(pos: u32): usize {
  return <usize>(cacheHeaderBase + (pos & (cacheSlots - 1)) * ENTRY_SIZE);
}
@inline function entryData(pos: u32): usize {
  return <usize>(cacheDataBase + ((pos & (cacheSlots - 1)) << LINE_SHIFT));
}
@inline function sectorAddr(sector: u32): usize {
  return <usize>imageBase + (<usize>sector << SECTOR_SHIFT);
}
/** True while `pos` names an entry still in the log (not destaged, not lost in a crash). */
@inline function entryLive(pos: u32): bool {
  return <i32>(pos - cacheTail()) >= 0 && <i32>(cacheHead() - pos) > 0;
}
@inline function hasCache(): bool {
  return (features & FEATURE_WRITE_CACHE) != 0;
}

// ---- the index: open addressing with linear probing, deletion by backward shift ---------------

@inline function indexMask(): u32 { return cacheIndexSlots - 1; }
@inline function indexHome(line: u32): u32 {
  return (line * 0x9e3779b1) >>> (32 - <u32>ctz(cacheIndexSlots)) & indexMask();
}
@inline function indexSlotAddr(slot: u32): usize {
  return <usize>(cacheIndexBase + slot * INDEX_SIZE);
}

// The line map mirrors which lines the index holds, a bit each, so that a request over lines the
// cache does not hold (most of a large write's or read's) skips the probes.

@inline function lineMapWord(line: u32): usize {
  return <usize>cacheLineMap + ((<usize>line >> 5) << 2);
}
@inline function lineIndexed(line: u32): bool {
  return (load<u32>(lineMapWord(line)) & (1 << (line & 31))) != 0;
}
@inline function lineMapSet(line: u32): void {
  store<u32>(lineMapWord(line), load<u32>(lineMapWord(line)) | (1 << (line & 31)));
}
@inline function lineMapClear(line: u32): void {
  store<u32>(lineMapWord(line), load<u32>(lineMapWord(line)) & ~(1 << (line & 31)));
}

/** The slot holding `line`, or the empty slot where it would go. */
function indexProbe(line: u32): u32 {
  let slot = indexHome(line);
  // The table has at least twice as many slots as the log has entries, so an empty slot exists.
  for (let probes: u32 = 0; probes < cacheIndexSlots; probes++) {
    const key = load<u32>(indexSlotAddr(slot) + INDEX_LINE);
    if (key == line || key == INDEX_EMPTY) return slot;
    slot = (slot + 1) & indexMask();
  }
  unreachable();
  return 0;
}

/** The newest log position for `line`, or INDEX_EMPTY when the line has no cached entry. */
function indexGet(line: u32): u32 {
  const slot = indexProbe(line);
  if (load<u32>(indexSlotAddr(slot) + INDEX_LINE) == INDEX_EMPTY) return INDEX_EMPTY;
  return load<u32>(indexSlotAddr(slot) + INDEX_POS);
}

function indexDelete(slot: u32): void {
  lineMapClear(load<u32>(indexSlotAddr(slot) + INDEX_LINE));
  let hole = slot;
  let next = slot;
  for (let moved: u32 = 0; moved < cacheIndexSlots; moved++) {
    next = (next + 1) & indexMask();
    const key = load<u32>(indexSlotAddr(next) + INDEX_LINE);
    if (key == INDEX_EMPTY) break;
    const home = indexHome(key);
    // The entry at `next` may fill the hole only if its home is not cyclically in (hole, next].
    const stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
    if (stays) continue;
    store<u32>(indexSlotAddr(hole) + INDEX_LINE, key);
    store<u32>(indexSlotAddr(hole) + INDEX_POS, load<u32>(indexSlotAddr(next) + INDEX_POS));
    hole = next;
  }
  store<u32>(indexSlotAddr(hole) + INDEX_LINE, INDEX_EMPTY);
}

function indexClear(): void {
  memory.fill(<usize>cacheIndexBase, 0xff, <usize>cacheIndexSlots * INDEX_SIZE);
  memory.fill(<usize>cacheLineMap, 0, lineMapBytes());
}

// ---- destaging --------------------------------------------------------------------------------

/** Copies the sectors of `mask` from a line-sized buffer at `src` to the image. */
function copyMaskToImage(line: u32, mask: u32, src: usize): void {
  const firstSector = line * SECTORS_PER_LINE;
  let bits = mask;
  while (bits != 0) {
    const start = <u32>ctz(bits);
    const run = <u32>ctz(~(bits >>> start));
    memory.copy(sectorAddr(firstSector + start), src + (<usize>start << SECTOR_SHIFT), run << SECTOR_SHIFT);
    bits &= ~(((1 << run) - 1) << start);
  }
}

/** The sectors that the cached versions of a line newer than the one at `pos` hold, walking from
 *  the line's newest (`newest`, or INDEX_EMPTY). */
function newerSectors(newest: u32, pos: u32): u32 {
  let covered: u32 = 0;
  let p = newest;
  while (p != INDEX_EMPTY && p != pos && entryLive(p)) {
    const header = entryAddr(p);
    covered |= load<u32>(header + ENTRY_MASK);
    p = load<u32>(header + ENTRY_PREV);
  }
  return covered;
}

/**
 * Takes the oldest entry out of the log. For a flush (`room` false) its sectors go to the image:
 * the flush makes them durable. To make room (`room` true) for an entry no issued flush covers,
 * nothing is promised durable, so sectors that a newer cached version of the line holds are not
 * copied: any later flush covers that newer version, and until then the image's older (durable)
 * version is what a power cut may keep beside it, which the durability contract allows.
 * An entry released to background destaging goes to the image whole whoever takes it out (the
 * destager thread, a flush, or an append making room), so the image does not depend on which.
 */
function destageOldest(room: bool): void {
  const pos = cacheTail();
  const header = entryAddr(pos);
  const line = load<u32>(header + ENTRY_LINE);
  const mask = load<u32>(header + ENTRY_MASK);
  // One probe serves both the walk over newer versions and the index update below (the copy in
  // between does not touch the index).
  const slot = indexProbe(line);
  const indexed = load<u32>(indexSlotAddr(slot) + INDEX_LINE) == line;
  const newest = indexed ? load<u32>(indexSlotAddr(slot) + INDEX_POS) : INDEX_EMPTY;
  if (mask != 0) {
    // Only when no flush issued so far covers this entry: one in flight must find it durable.
    const covered = <i32>(load<u32>(ctrlAddr(CTRL_FLUSH_ISSUED)) - pos) > 0 ||
      <i32>(load<u32>(ctrlAddr(CTRL_DESTAGE_TARGET)) - pos) > 0;
    const write = room && !covered ? mask & ~newerSectors(newest, pos) : mask;
    if (write != 0) copyMaskToImage(line, write, entryData(pos));
    countDestaged(mask, write);
  }
  if (indexed && newest == pos) indexDelete(slot);
  store<u32>(ctrlAddr(CTRL_CACHE_TAIL), pos + 1);
}

/** The counters of an entry taken out of the log: `mask` no longer dirty, `written` on the media. */
@inline function countDestaged(mask: u32, written: u32): void {
  statSub(CTRL_STAT_DIRTY_BYTES, <u64>popcnt(mask) << SECTOR_SHIFT);
  statAdd(CTRL_STAT_DESTAGED_BYTES, <u64>popcnt(written) << SECTOR_SHIFT);
}

/** Appends one line's part of a write to the log, destaging the oldest entry when full. */
function appendLine(line: u32, firstInLine: u32, count: u32, writeId: u32): void {
  makeRoom(1);
  const pos = cacheHead();
  // The data first: the entry is published (header, index, head) only once it holds it.
  iterCopyOut(entryData(pos) + (<usize>firstInLine << SECTOR_SHIFT), count << SECTOR_SHIFT);
  if (iterFault) return;
  publishEntry(pos, line, ((1 << count) - 1) << firstInLine, writeId);
  store<u32>(ctrlAddr(CTRL_CACHE_HEAD), pos + 1);
}

/**
 * Under the lock, before a request that may need `entries` log entries: when the log has less
 * room and the destager thread is writing entries back outside the lock (a claim), waits for it
 * to retire them (letting go of the lock meanwhile, and before any of the request's own entries
 * go in, so a request is never split around another thread's step). Afterwards no claim can
 * start until this thread lets go of the lock, so appends may destage as they always did (a long
 * run copied without the lock lets a claim start meanwhile; a later piece that needs room waits
 * for it to end: makeRoom()).
 */
function roomFor(entries: u32): void {
  if (cacheSlots - (cacheHead() - cacheTail()) < entries) waitUnclaimed();
}

/** Under the lock: makes room for `entries` more entries, taking the oldest out of the log (after
 *  any claim on them ends) when there is less. */
function makeRoom(entries: u32): void {
  if (cacheSlots - (cacheHead() - cacheTail()) >= entries) return;
  waitUnclaimed();
  while (cacheSlots - (cacheHead() - cacheTail()) < entries) destageOldest(true);
}

/** A run of this many whole lines or more is copied into the log outside the device lock. */
const UNLOCKED_COPY_LINES: u32 = 16;

/**
 * Appends `lines` whole lines from `first` on, at log positions that do not wrap: the data of all
 * of them in one copy (they are consecutive in the log), then each line's header and index entry.
 * Room is made first, destaging the oldest entries as appendLine() would one at a time.
 */
function appendLines(first: u32, lines: u32, writeId: u32): void {
  makeRoom(lines);
  const head = cacheHead();
  if (lines >= UNLOCKED_COPY_LINES) {
    // A long copy goes in without the lock, so that the destager thread can claim and retire
    // entries meanwhile (both copies then overlap). The slots past the head are this thread's
    // alone: only the thread running device requests appends, and everything else (a retire, a
    // flush) takes entries between the tail and the head, which only moves away from them.
    unlockDevice();
    iterCopyOut(entryData(head), lines << LINE_SHIFT);
    lockDevice();
    // The thread may have claimed entries meanwhile: publishing does not touch them, and a later
    // piece that needs room waits for the claim to end first (makeRoom()).
  } else {
    iterCopyOut(entryData(head), lines << LINE_SHIFT);
  }
  if (iterFault) return;
  for (let i: u32 = 0; i < lines; i++) publishEntry(head + i, first + i, FULL_LINE_MASK, writeId);
  store<u32>(ctrlAddr(CTRL_CACHE_HEAD), head + lines);
}

/** Writes the header of the entry at `pos` (linked to the line's newest cached version) and makes
 *  it the line's newest in the index. The head moves after, once every entry is published. */
@inline function publishEntry(pos: u32, line: u32, mask: u32, writeId: u32): void {
  const header = entryAddr(pos);
  const slot = indexProbe(line);
  const older = load<u32>(indexSlotAddr(slot) + INDEX_LINE) == line
    ? load<u32>(indexSlotAddr(slot) + INDEX_POS) : INDEX_EMPTY;
  if (older == INDEX_EMPTY) lineMapSet(line);
  store<u32>(header + ENTRY_LINE, line);
  store<u32>(header + ENTRY_WRITE_ID, writeId);
  store<u32>(header + ENTRY_PREV, older);
  store<u32>(header + ENTRY_MASK, mask);
  store<u32>(indexSlotAddr(slot) + INDEX_LINE, line);
  store<u32>(indexSlotAddr(slot) + INDEX_POS, pos);
}

/** Clears the sectors of `mask` from every cached version of `line` (a newer durable copy wins). */
function forgetCachedSectors(line: u32, mask: u32): void {
  if (!lineIndexed(line)) return;
  let pos = indexGet(line);
  while (pos != INDEX_EMPTY && entryLive(pos)) {
    const header = entryAddr(pos);
    const held = load<u32>(header + ENTRY_MASK);
    const cleared = held & mask;
    if (cleared != 0) {
      store<u32>(header + ENTRY_MASK, held & ~mask);
      statSub(CTRL_STAT_DIRTY_BYTES, <u64>popcnt(cleared) << SECTOR_SHIFT);
    }
    pos = load<u32>(header + ENTRY_PREV);
  }
}

/** Where sector `sector` of `line` currently lives: the newest cached version or the image. */
function sectorSource(line: u32, newest: u32, inLine: u32): usize {
  let pos = newest;
  while (pos != INDEX_EMPTY && entryLive(pos)) {
    const header = entryAddr(pos);
    if ((load<u32>(header + ENTRY_MASK) & (1 << inLine)) != 0) {
      return entryData(pos) + (<usize>inLine << SECTOR_SHIFT);
    }
    pos = load<u32>(header + ENTRY_PREV);
  }
  return sectorAddr(line * SECTORS_PER_LINE + inLine);
}

// ---- background destaging ---------------------------------------------------------------------
//
// A device writes its cache back in the background; here another thread (the host's destager) may
// do that work, off the thread that submits IO. What it writes back is decided on the submitting
// side, by the log alone: once more than nine sixteenths of the log holds entries not yet released,
// every entry but the newest half's is released (the target moves, in steps of a sixteenth, so that
// the thread works along with the appends rather than in bursts), and a released entry goes to the
// image whole, whoever takes it out. So the image and the cache at any device step do not
// depend on how far the other thread got: a power cut first writes back what is released (as the
// destager would have), then decides the rest by its seeded coins. The destager copies a claimed
// run of entries outside the lock (destageClaimed()); everything that takes entries out of the log
// or writes the media over cached lines waits for the claim to end first (waitUnclaimed()).

/** The log entries not yet released for write-back: those a power cut may still lose. */
@inline function unreleased(): u32 {
  const head = cacheHead();
  const tail = cacheTail();
  // The target counts only while it lies in the log (a flush or a power cut may have taken the log
  // past it, and without a destager thread it never moves).
  const released = load<u32>(ctrlAddr(CTRL_DESTAGE_TARGET)) - tail;
  return released <= head - tail ? head - tail - released : head - tail;
}

/** Under the lock, after an append: moves the target when the unreleased part of the log passed
 *  nine sixteenths of it. Only when the host enabled background destaging. */
function releaseForDestage(): void {
  if (load<u32>(ctrlAddr(CTRL_DESTAGE_ENABLED)) == 0) return;
  if (unreleased() > (cacheSlots >> 1) + (cacheSlots >> 4)) {
    store<u32>(ctrlAddr(CTRL_DESTAGE_TARGET), cacheHead() - (cacheSlots >> 1));
  }
}

/** Entries [tail, claim) are being written back by the destager thread, outside the lock. */
@inline function claimActive(): bool {
  return <i32>(load<u32>(ctrlAddr(CTRL_DESTAGE_CLAIM)) - cacheTail()) > 0;
}

/**
 * Under the lock: waits until no entry is claimed, letting go of the lock meanwhile (the thread
 * retires its claim under it). Whatever takes entries out of the log, or writes the media over
 * cached lines, calls this first, so it never overlaps the thread's copies.
 */
function waitUnclaimed(): void {
  while (claimActive()) {
    unlockDevice();
    // A claim is a short run of copies: poll until it is retired, then take the lock again. A
    // claimant that died is given up by its host (destageAbandon()); one that never comes back
    // traps here, as an abandoned lock does, rather than hanging the thread.
    for (let spins: u32 = 0; <i32>(atomic.load<u32>(ctrlAddr(CTRL_DESTAGE_CLAIM)) - atomic.load<u32>(ctrlAddr(CTRL_CACHE_TAIL))) > 0; spins++) {
      if (spins == LOCK_SPINS_MAX) unreachable();
    }
    lockDevice();
  }
}

/**
 * The destager thread died (its host saw it go): a claim it left is given up. Its entries are
 * still in the log, released, and are written back whole again by whoever takes them out: the
 * copy is the same bytes to the same place, so a partial one leaves nothing wrong behind.
 */
export function destageAbandon(): void {
  // Nor does it take shares any more.
  atomic.store<u32>(ctrlAddr(CTRL_SHARE_READY), 0);
  lockDevice();
  if (claimActive()) store<u32>(ctrlAddr(CTRL_DESTAGE_CLAIM), cacheTail());
  unlockDevice();
}

/** The released entries still in the log; under the lock. */
@inline function releasedLeft(): i32 {
  const left = <i32>(load<u32>(ctrlAddr(CTRL_DESTAGE_TARGET)) - cacheTail());
  return left > 0 ? left : 0;
}

/**
 * Writes back released entries, oldest first, at most `budget` of them, taking the lock for one
 * entry at a time (the submitting thread waits at most one entry's copy). Returns how many
 * released entries remain.
 */
export function destageReleased(budget: u32): u32 {
  let done: u32 = 0;
  let left: i32 = 0;
  for (;;) {
    lockDevice();
    waitUnclaimed();
    left = releasedLeft();
    if (left == 0 || done == budget) break;
    destageOldest(false);
    unlockDevice();
    done++;
  }
  unlockDevice();
  return <u32>left;
}

/**
 * The destager thread's write-back: claims up to `budget` released entries under the lock, copies
 * them to the media without it (a claimed entry stays in the log, indexed, so reads still find it
 * there; nothing else takes it out or writes its sectors meanwhile, see waitUnclaimed()), then
 * retires them under the lock, whole, as destageOldest() would. Returns the released entries left.
 */
export function destageClaimed(budget: u32): u32 {
  lockDevice();
  const tail = cacheTail();
  let count = <u32>releasedLeft();
  if (count > budget) count = budget;
  if (count == 0 || claimActive()) {
    unlockDevice();
    return count;
  }
  store<u32>(ctrlAddr(CTRL_DESTAGE_CLAIM), tail + count);
  unlockDevice();
  for (let i: u32 = 0; i < count;) {
    const header = entryAddr(tail + i);
    const mask = load<u32>(header + ENTRY_MASK);
    const line = load<u32>(header + ENTRY_LINE);
    if (mask != FULL_LINE_MASK) {
      if (mask != 0) copyMaskToImage(line, mask, entryData(tail + i));
      i++;
      continue;
    }
    // Whole lines that follow one another on the disk and in the log go in one copy.
    let run: u32 = 1;
    while (i + run < count && ((tail + i + run) & (cacheSlots - 1)) != 0) {
      const next = entryAddr(tail + i + run);
      if (load<u32>(next + ENTRY_MASK) != FULL_LINE_MASK || load<u32>(next + ENTRY_LINE) != line + run) break;
      run++;
    }
    memory.copy(sectorAddr(line * SECTORS_PER_LINE), entryData(tail + i), <usize>run << LINE_SHIFT);
    i += run;
  }
  lockDevice();
  for (let i: u32 = 0; i < count; i++) {
    const pos = tail + i;
    const header = entryAddr(pos);
    const line = load<u32>(header + ENTRY_LINE);
    const mask = load<u32>(header + ENTRY_MASK);
    if (mask != 0) countDestaged(mask, mask);
    const slot = indexProbe(line);
    if (load<u32>(indexSlotAddr(slot) + INDEX_LINE) == line && load<u32>(indexSlotAddr(slot) + INDEX_POS) == pos) indexDelete(slot);
  }
  store<u32>(ctrlAddr(CTRL_CACHE_TAIL), tail + count);
  const left = releasedLeft();
  unlockDevice();
  return <u32>left;
}

// ---- sharing a large copy ---------------------------------------------------------------------
//
// A drive moves a write's data with its own engine, not the host's CPU. Here the destager thread is
// the device's other pair of hands: a large copy to the media (a write past the cache, a FUA write)
// is cut in two halves that this thread and the destager thread take from a shared cursor, and the
// request completes once both are copied. The thread joins only while it is awake (it stays awake
// a moment after each share, so that a stream of large writes keeps it so); a half it has not
// taken by the time this thread has copied the first is copied here too, and a share it has not
// joined by then is taken back. The bytes that reach the media are the same either way, and the
// device lock stays held meanwhile, so nothing else observes the copy half done.
// (Measured against more, smaller chunks: halves did as well or better, bench/README.md.)

/** A copy of this many bytes or more is shared with the destager thread when it is awake. */
const SHARE_MIN_BYTES: u32 = 64 << 10;
/** Spins while the thread finishes its half (a few microseconds of copying), before it is taken
 *  to have died with the share (about a second). */
const SHARE_SPINS_MAX: u32 = 1 << 28;

/** Takes halves of the posted share until none is left. */
function copyChunks(): void {
  const src = <usize>load<u32>(ctrlAddr(CTRL_SHARE_SRC));
  const dst = <usize>load<u32>(ctrlAddr(CTRL_SHARE_DST));
  const bytes = load<u32>(ctrlAddr(CTRL_SHARE_BYTES));
  const chunk = ((bytes >> 1) + 63) & ~63;
  for (;;) {
    const at = atomic.add<u32>(ctrlAddr(CTRL_SHARE_NEXT), chunk);
    if (at >= bytes) return;
    memory.copy(dst + at, src + at, bytes - at < chunk ? bytes - at : chunk);
  }
}

/** Copies `bytes` from `src` to `dst` (the media), sharing the chunks with the destager thread
 *  when it is awake to join. */
function copyShared(dst: usize, src: usize, bytes: u32): void {
  store<u32>(ctrlAddr(CTRL_SHARE_SRC), <u32>src);
  store<u32>(ctrlAddr(CTRL_SHARE_DST), <u32>dst);
  store<u32>(ctrlAddr(CTRL_SHARE_BYTES), bytes);
  store<u32>(ctrlAddr(CTRL_SHARE_NEXT), 0);
  // Release: the words above are visible to the thread before it can see the share posted.
  atomic.store<u32>(ctrlAddr(CTRL_SHARE_STATE), SHARE_POSTED);
  if (atomic.load<u32>(ctrlAddr(CTRL_DESTAGE_SLEEPING)) != 0) {
    // Woken for a share, the thread stays awake for the next ones (this one it will likely miss).
    atomic.store<u32>(ctrlAddr(CTRL_SHARE_WAKE), 1);
    atomic.add<u32>(ctrlAddr(CTRL_DESTAGE_BELL), 1);
    atomic.notify(ctrlAddr(CTRL_DESTAGE_BELL), 1);
  }
  copyChunks();
  // Every chunk is taken. Not joined: done. Joined: wait for the thread's last chunk.
  if (atomic.cmpxchg<u32>(ctrlAddr(CTRL_SHARE_STATE), SHARE_POSTED, SHARE_IDLE) == SHARE_POSTED) return;
  for (let spins: u32 = 0; atomic.load<u32>(ctrlAddr(CTRL_SHARE_STATE)) != SHARE_DONE; spins++) {
    if (spins == SHARE_SPINS_MAX) {
      // The thread joined and never finished: it died (or stalled for about a second). The whole
      // range is copied here, and no share is posted again (the state stays TAKEN): the request
      // completes and the disk goes on, at one thread's speed. (A thread that only stalled and
      // comes back copies what the source then holds: a risk taken over wedging the disk.)
      atomic.store<u32>(ctrlAddr(CTRL_SHARE_READY), 0);
      memory.copy(dst, src, bytes);
      return;
    }
  }
  atomic.store<u32>(ctrlAddr(CTRL_SHARE_STATE), SHARE_IDLE);
}

/** The destager thread: joins a posted share, if there is one. True when it did. */
export function shareTake(): bool {
  if (atomic.load<u32>(ctrlAddr(CTRL_SHARE_STATE)) != SHARE_POSTED) return false;
  if (atomic.cmpxchg<u32>(ctrlAddr(CTRL_SHARE_STATE), SHARE_POSTED, SHARE_TAKEN) != SHARE_POSTED) return false;
  atomic.add<u32>(ctrlAddr(CTRL_SHARE_JOINED), 1);
  copyChunks();
  atomic.store<u32>(ctrlAddr(CTRL_SHARE_STATE), SHARE_DONE);
  return true;
}

/** destagePending(): released entries wait to be written back. */
export const PENDING_RELEASED: u32 = 1;
/** destagePending(): a share waits to be joined. */
export const PENDING_SHARE: u32 = 2;

/** The destager thread's work waiting, looked at without the lock: PENDING_* bits. */
export function destagePending(): u32 {
  let pending: u32 = 0;
  if (atomic.load<u32>(ctrlAddr(CTRL_SHARE_STATE)) == SHARE_POSTED) pending |= PENDING_SHARE;
  const released = atomic.load<u32>(ctrlAddr(CTRL_DESTAGE_TARGET)) - atomic.load<u32>(ctrlAddr(CTRL_CACHE_TAIL));
  if (<i32>released > 0) pending |= PENDING_RELEASED;
  return pending;
}

/** Copies a media write's `bytes` from the bvec cursor to `dst`: shared when large, contiguous in
 *  memory, and the thread is there to take half. */
function copyToMedia(dst: usize, bytes: u32): void {
  if (bytes >= SHARE_MIN_BYTES && atomic.load<u32>(ctrlAddr(CTRL_SHARE_READY)) != 0 &&
    atomic.load<u32>(ctrlAddr(CTRL_SHARE_STATE)) == SHARE_IDLE) {
    const src = iterTakeWhole(bytes);
    if (src != 0) {
      copyShared(dst, src, bytes);
      return;
    }
  }
  iterCopyOut(dst, bytes);
}

// ---- requests ---------------------------------------------------------------------------------

@inline function rangeValid(sector: u32, sectors: u32): bool {
  // sectorCount < 2^23 (wasm32), so sectors << SECTOR_SHIFT below cannot overflow once this holds.
  return sectors != 0 && <u64>sector + <u64>sectors <= <u64>sectorCount;
}

// ---- going past a full cache --------------------------------------------------------------------
//
// Appending a write to a cache whose entries at risk (those a power cut may still lose) fill their
// bound pushes older ones out: destaged to make room (inline), or released to the destager. Either
// way their bytes are copied twice, into the log and then to the media. A large request that would
// not fit beside the entries at risk goes to the media instead, as a FUA write does (older cached
// versions of its sectors are dropped): copied once, durable at once, which the durability
// contract allows, and the older writes at risk stay at risk. With a destager thread the bound is
// half the log, the level releases bring the entries at risk down to: once that much is at risk,
// large requests go past the cache and only smaller ones push entries out (a stream of large
// writes leaves the thread idle). The decision reads only the log's positions as this thread's
// steps left them (the thread never takes the tail past the target, and the tail passes the
// target only by flushes and power cuts, which are ordered with the steps), never how far the
// destager thread got, so it is the same on every run.

/** A request of this many sectors (64 KiB) or more may go past the cache. */
const BYPASS_MIN_SECTORS: u32 = 128;

/** Whether a write request of `sectors` sectors over `lines` lines goes past the cache to the
 *  media (under the lock). */
function bypassCache(sectors: u32, lines: u32): bool {
  if (sectors < BYPASS_MIN_SECTORS || (features & FEATURE_CACHE_BYPASS) == 0) return false;
  const bound = load<u32>(ctrlAddr(CTRL_DESTAGE_ENABLED)) != 0 ? cacheSlots >> 1 : cacheSlots;
  return unreleased() + lines > bound;
}

/**
 * Completes one write request at the device: `sectors` sectors at `sector`, data from the bvec
 * cursor (index, done). Lands in the cache, or on the media when `fua`, without a cache, or when
 * it goes past a full cache (bypassCache()). Returns 0 or -errno.
 */
export function deviceWrite(sector: u32, sectors: u32, index: u32, done: u32, fua: bool): i32 {
  if (!rangeValid(sector, sectors)) return -EIO;
  if (!bvecRangeValid(index, done, sectors << SECTOR_SHIFT)) return -EINVAL;
  iterStart(index, done);
  lockDevice();
  const lines = (sector + sectors - 1) / SECTORS_PER_LINE - sector / SECTORS_PER_LINE + 1;
  const bypass = hasCache() && !fua && bypassCache(sectors, lines);
  if (!hasCache() || fua || bypass) {
    if (hasCache()) {
      // The media is written over cached lines: not while the thread copies some of them.
      waitUnclaimed();
      let s = sector;
      const end = sector + sectors;
      while (s < end) {
        const line = s / SECTORS_PER_LINE;
        const inLine = s % SECTORS_PER_LINE;
        let count = SECTORS_PER_LINE - inLine;
        if (count > end - s) count = end - s;
        forgetCachedSectors(line, ((1 << count) - 1) << inLine);
        s += count;
      }
      statAdd(bypass ? CTRL_STAT_BYPASS_WRITES : CTRL_STAT_FUA_WRITES, 1);
    }
    copyToMedia(sectorAddr(sector), sectors << SECTOR_SHIFT);
  } else {
    const end = sector + sectors;
    roomFor(lines);
    // After the wait (which may let go of the lock): ids go to the log in the order they are drawn.
    const writeId = nextWriteId();
    let s = sector;
    while (s < end && !iterFault) {
      const inLine = s % SECTORS_PER_LINE;
      if (inLine == 0 && end - s >= 2 * SECTORS_PER_LINE) {
        // A run of whole lines goes in with one copy, up to where the log wraps.
        let lines = (end - s) / SECTORS_PER_LINE;
        const toWrap = cacheSlots - (cacheHead() & (cacheSlots - 1));
        if (lines > toWrap) lines = toWrap;
        if (lines >= 2) {
          appendLines(s / SECTORS_PER_LINE, lines, writeId);
          if (iterFault) break; // nothing of the run was published
          s += lines * SECTORS_PER_LINE;
          continue;
        }
      }
      let count = SECTORS_PER_LINE - inLine;
      if (count > end - s) count = end - s;
      appendLine(s / SECTORS_PER_LINE, inLine, count, writeId);
      if (iterFault) break;
      s += count;
    }
    // What went into the log (all of it, unless a segment was found outside the arena).
    statAdd(CTRL_STAT_DIRTY_BYTES, <u64>(s - sector) << SECTOR_SHIFT);
    releaseForDestage();
  }
  if (!iterFault) statAdd(CTRL_STAT_BYTES_WRITTEN, <u64>sectors << SECTOR_SHIFT);
  unlockDevice();
  return iterFault ? -EIO : 0;
}

/** Completes one read request: the newest version of each sector goes to the bvec cursor. */
export function deviceRead(sector: u32, sectors: u32, index: u32, done: u32): i32 {
  if (!rangeValid(sector, sectors)) return -EIO;
  if (!bvecRangeValid(index, done, sectors << SECTOR_SHIFT)) return -EINVAL;
  iterStart(index, done);
  lockDevice();
  if (!hasCache() || cacheHead() == cacheTail()) {
    iterCopyIn(sectorAddr(sector), sectors << SECTOR_SHIFT);
  } else {
    let s = sector;
    const end = sector + sectors;
    while (s < end && !iterFault) {
      const line = s / SECTORS_PER_LINE;
      const inLine = s % SECTORS_PER_LINE;
      let count = SECTORS_PER_LINE - inLine;
      if (count > end - s) count = end - s;
      const newest = lineIndexed(line) ? indexGet(line) : INDEX_EMPTY;
      const wanted = ((1 << count) - 1) << inLine;
      if (newest == INDEX_EMPTY) {
        iterCopyIn(sectorAddr(s), count << SECTOR_SHIFT);
      } else if ((load<u32>(entryAddr(newest) + ENTRY_MASK) & wanted) == wanted) {
        iterCopyIn(entryData(newest) + (<usize>inLine << SECTOR_SHIFT), count << SECTOR_SHIFT);
      } else {
        for (let i: u32 = 0; i < count; i++) {
          iterCopyIn(sectorSource(line, newest, inLine + i), SECTOR_BYTES);
        }
      }
      s += count;
    }
  }
  if (!iterFault) statAdd(CTRL_STAT_BYTES_READ, <u64>sectors << SECTOR_SHIFT);
  unlockDevice();
  return iterFault ? -EIO : 0;
}

/** Issues a cache flush: returns the log position it covers (every write completed so far). */
export function flushMark(): u32 {
  return flushMarks(1);
}

/**
 * `count` flushes issued back to back, with nothing completing between them: they cover the same
 * writes, so one mark (and one commit) serves them all; each counts as a flush. The flush thread
 * serves a run of requests of an ordered queue so (the first flush of the run does the work, the
 * others find nothing new to write back).
 */
export function flushMarks(count: u32): u32 {
  lockDevice();
  const mark = cacheHead();
  store<u32>(ctrlAddr(CTRL_FLUSH_ISSUED), mark);
  statAdd(CTRL_STAT_FLUSHES, count);
  unlockDevice();
  return mark;
}

/** Completes a flush issued at `mark`: everything logged before it becomes durable. */
export function flushCommit(mark: u32): void {
  lockDevice();
  waitUnclaimed();
  // The tail may already be past the mark (a crash or a later flush did the work).
  while (<i32>(mark - cacheTail()) > 0) destageOldest(false);
  unlockDevice();
}

// ---- power cut --------------------------------------------------------------------------------

/** Whether a power cut lets this version of this sector reach the media: a seeded coin. */
export function survives(seed: u32, writeId: u32, sector: u32, torn: bool): bool {
  let h = seed ^ (writeId * 0x9e3779b1) ^ (torn ? sector * 0x85ebca6b : 0);
  h ^= h >>> 16;
  h *= 0x7feb352d;
  h ^= h >>> 15;
  h *= 0x846ca68b;
  h ^= h >>> 16;
  return (h & 1) != 0;
}

/**
 * A power cut for the cache: each cached version reaches the media or not, by the seeded coin
 * (per write, or per sector when `torn`), oldest first so that a sector ends with its newest
 * surviving version or its durable one. The cache is then empty.
 */
export function crashCache(seed: u32, torn: bool): void {
  lockDevice();
  waitUnclaimed();
  // What was released is written back first, as the destager would have (see above).
  while (releasedLeft() > 0) destageOldest(false);
  const head = cacheHead();
  for (let pos = cacheTail(); pos != head; pos++) {
    const header = entryAddr(pos);
    const line = load<u32>(header + ENTRY_LINE);
    const writeId = load<u32>(header + ENTRY_WRITE_ID);
    const mask = load<u32>(header + ENTRY_MASK);
    let keep: u32 = 0;
    for (let i: u32 = 0; i < SECTORS_PER_LINE; i++) {
      if ((mask & (1 << i)) != 0 && survives(seed, writeId, line * SECTORS_PER_LINE + i, torn)) keep |= 1 << i;
    }
    if (keep != 0) copyMaskToImage(line, keep, entryData(pos));
  }
  store<u32>(ctrlAddr(CTRL_CACHE_TAIL), head);
  indexClear();
  store<u64>(ctrlAddr(CTRL_STAT_DIRTY_BYTES), 0);
  unlockDevice();
}

/**
 * A power cut for one write request still in flight: its data reaches the media whole or not at
 * all, or sector by sector when `torn`. Returns 0 or -errno.
 */
export function crashInflightWrite(sector: u32, sectors: u32, index: u32, done: u32, seed: u32, torn: bool): i32 {
  if (!rangeValid(sector, sectors)) return -EINVAL;
  if (!bvecRangeValid(index, done, sectors << SECTOR_SHIFT)) return -EINVAL;
  iterStart(index, done);
  lockDevice();
  waitUnclaimed();
  const writeId = nextWriteId();
  for (let i: u32 = 0; i < sectors && !iterFault; i++) {
    if (survives(seed, writeId, sector + i, torn)) iterCopyOut(sectorAddr(sector + i), SECTOR_BYTES);
    else iterSkip(SECTOR_BYTES);
  }
  unlockDevice();
  return iterFault ? -EIO : 0;
}

/** Empties the cache and index (at creation). */
export function deviceReset(): void {
  store<u32>(ctrlAddr(CTRL_CACHE_HEAD), 0);
  store<u32>(ctrlAddr(CTRL_CACHE_TAIL), 0);
  store<u32>(ctrlAddr(CTRL_FLUSH_ISSUED), 0);
  store<u32>(ctrlAddr(CTRL_DESTAGE_TARGET), 0);
  store<u32>(ctrlAddr(CTRL_DESTAGE_CLAIM), 0);
  if (cacheSlots != 0) indexClear();
}
