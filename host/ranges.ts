// A first-fit allocator of aligned ranges inside a fixed region of the shared memory: the arena
// that alloc() hands IO buffers from, and the bvec pool. Bookkeeping lives on the owning thread.

interface FreeRange { start: number; end: number }

/** Hands out [start, start + size) ranges of a region; every live range is known by its start. */
export class RangeAllocator {
  private readonly free: FreeRange[];
  private readonly live = new Map<number, { blockStart: number; blockEnd: number; size: number }>();
  private usedBytes = 0;

  constructor(readonly base: number, readonly bytes: number) {
    this.free = bytes > 0 ? [{ start: base, end: base + bytes }] : [];
  }

  /** Bytes currently handed out (including alignment padding). */
  get used(): number {
    return this.usedBytes;
  }

  /** The start of a new range of `size` units aligned to `align`, or -1 when none is free. */
  allocate(size: number, align: number): number {
    for (let i = 0; i < this.free.length; i++) {
      const range = this.free[i];
      const start = Math.ceil(range.start / align) * align;
      if (start + size > range.end) continue;
      const blockStart = range.start;
      const blockEnd = start + size;
      if (blockEnd === range.end) this.free.splice(i, 1);
      else range.start = blockEnd;
      this.live.set(start, { blockStart, blockEnd, size });
      this.usedBytes += blockEnd - blockStart;
      return start;
    }
    return -1;
  }

  /** The size of the live range that starts at `start`, or undefined. */
  sizeOf(start: number): number | undefined {
    return this.live.get(start)?.size;
  }

  /** Returns a live range; false when `start` is not the start of one (nothing changes then). */
  release(start: number): boolean {
    const block = this.live.get(start);
    if (block === undefined) return false;
    this.live.delete(start);
    this.usedBytes -= block.blockEnd - block.blockStart;
    // Back in address order, merged with its neighbours (no new range when one absorbs it).
    const free = this.free;
    let i = 0;
    while (i < free.length && free[i].start < block.blockStart) i++;
    const prev = i > 0 ? free[i - 1] : undefined;
    const next = i < free.length ? free[i] : undefined;
    const joinsPrev = prev !== undefined && prev.end === block.blockStart;
    const joinsNext = next !== undefined && next.start === block.blockEnd;
    if (joinsPrev && joinsNext) {
      prev.end = next.end;
      free.splice(i, 1);
    } else if (joinsPrev) {
      prev.end = block.blockEnd;
    } else if (joinsNext) {
      next.start = block.blockStart;
    } else {
      free.splice(i, 0, { start: block.blockStart, end: block.blockEnd });
    }
    return true;
  }
}
