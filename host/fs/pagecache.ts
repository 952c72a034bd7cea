// The page cache of one filesystem: 4 KiB pages of file data, held in the disk's IO-buffer arena
// so that writeback and reads go to the device with no copy. Clean pages are evicted least
// recently used first; dirty pages leave only through writeback (the filesystem's job).
import type { Disk } from "../disk.js";
import { DioError } from "../errors.js";

export const PAGE_BYTES = 4096;

/** One cached page of one file. A page holds PAGE_BYTES / blockSize fs blocks (1, 2 or 4). */
export interface Page {
  ino: number;
  index: number;
  buf: Uint8Array;
  /** Bit i: block i of the page holds data not yet written back (like a dirty buffer_head). */
  dirtyMask: number;
  /** Bit i: block i of the page has a block reserved for it until writeback allocates it. */
  reservedMask: number;
  lastUse: number;
  /** Reads into the page in flight: it may not be evicted (its buffer is in a bio). */
  busy: number;
}

/** Number of set bits of a small mask. */
export function bitCount(mask: number): number {
  let count = 0;
  for (let m = mask; m !== 0; m &= m - 1) count++;
  return count;
}

export class PageCache {
  private readonly files = new Map<number, Map<number, Page>>();
  private pageCount = 0;
  private dirtyCount = 0;
  private clock = 0;
  /** Page buffers of dropped pages, kept for reuse (zeroed when handed out again). */
  private readonly spare: Uint8Array[] = [];

  constructor(private readonly disk: Disk, readonly capacityPages: number, readonly dirtyLimitPages: number) {}

  get pages(): number {
    return this.pageCount;
  }
  get dirtyPages(): number {
    return this.dirtyCount;
  }

  get(ino: number, index: number): Page | undefined {
    const page = this.files.get(ino)?.get(index);
    if (page !== undefined) page.lastUse = ++this.clock;
    return page;
  }

  /** Whether `ino` has any cached page (without building a list). */
  hasPages(ino: number): boolean {
    return this.files.size !== 0 && this.files.has(ino);
  }

  /** Whether `ino` has a dirty page (without building a list). */
  hasDirty(ino: number): boolean {
    if (this.dirtyCount === 0) return false;
    const file = this.files.get(ino);
    if (file === undefined) return false;
    for (const page of file.values()) if (page.dirtyMask !== 0) return true;
    return false;
  }

  /** The pages of `ino`, in index order (optionally only dirty ones). */
  pagesOf(ino: number, dirtyOnly = false): Page[] {
    const file = this.files.get(ino);
    if (file === undefined) return [];
    const list = [...file.values()].filter((page) => !dirtyOnly || page.dirtyMask !== 0);
    return list.sort((a, b) => a.index - b.index);
  }

  /** Inodes that hold dirty pages. */
  dirtyInodes(): number[] {
    const inos: number[] = [];
    for (const [ino, file] of this.files) {
      for (const page of file.values()) {
        if (page.dirtyMask !== 0) {
          inos.push(ino);
          break;
        }
      }
    }
    return inos.sort((a, b) => a - b);
  }

  /**
   * A new page for (ino, index), zeroed unless `zero` is false (the caller fills every byte),
   * evicting clean pages when the cache is full. Returns undefined when only dirty pages could
   * make room (the caller writes back and retries).
   */
  create(ino: number, index: number, zero = true): Page | undefined {
    // Evict in batches of an eighth of the cache: one scan pays for many new pages.
    if (this.pageCount >= this.capacityPages && !this.evictClean(Math.max(1, this.capacityPages >> 3))) return undefined;
    let buf = this.spare.pop();
    if (buf !== undefined && zero) buf.fill(0);
    while (buf === undefined) {
      try {
        buf = this.disk.alloc(PAGE_BYTES);
      } catch (error) {
        if (!(error instanceof DioError) || error.code !== "ENOMEM") throw error;
        // The arena is shared with the user's buffers: give back clean pages, or give up.
        if (!this.evictClean(16)) return undefined;
        buf = this.spare.pop();
        if (buf !== undefined && zero) buf.fill(0);
      }
    }
    const page: Page = { ino, index, buf, dirtyMask: 0, reservedMask: 0, lastUse: ++this.clock, busy: 0 };
    let file = this.files.get(ino);
    if (file === undefined) {
      file = new Map();
      this.files.set(ino, file);
    }
    file.set(index, page);
    this.pageCount++;
    return page;
  }

  /** Marks blocks `mask` of the page dirty. */
  markDirty(page: Page, mask: number): void {
    if (mask === 0) return;
    if (page.dirtyMask === 0) this.dirtyCount++;
    page.dirtyMask |= mask;
  }

  /** Marks blocks `mask` of the page clean (written back, or cut off by a truncate). */
  markClean(page: Page, mask: number): void {
    if (page.dirtyMask === 0) return;
    page.dirtyMask &= ~mask;
    if (page.dirtyMask === 0) this.dirtyCount--;
  }

  /** Drops one page, dirty or not (truncate, unlink). Returns how many blocks it had reserved. */
  drop(page: Page): number {
    const file = this.files.get(page.ino);
    if (file?.get(page.index) !== page) return 0;
    file.delete(page.index);
    if (file.size === 0) this.files.delete(page.ino);
    if (page.dirtyMask !== 0) this.dirtyCount--;
    this.pageCount--;
    if (this.spare.length < this.capacityPages >> 3) this.spare.push(page.buf);
    else this.disk.free(page.buf);
    const reserved = bitCount(page.reservedMask);
    page.reservedMask = 0;
    page.dirtyMask = 0;
    return reserved;
  }

  /** Evicts up to `count` clean pages, least recently used first; false if none could go. */
  evictClean(count: number): boolean {
    const clean: Page[] = [];
    for (const file of this.files.values()) for (const page of file.values()) if (page.dirtyMask === 0 && page.busy === 0) clean.push(page);
    if (clean.length === 0) return false;
    clean.sort((a, b) => a.lastUse - b.lastUse);
    for (const page of clean.slice(0, count)) this.drop(page);
    return true;
  }

  /** Drops every page and returns every buffer to the arena (unmount, or the filesystem died). */
  dropAll(): void {
    for (const file of [...this.files.values()]) for (const page of [...file.values()]) this.drop(page);
    this.releaseSpare();
  }

  /** Returns the spare page buffers to the arena (when the user's alloc() needs the room). */
  releaseSpare(): boolean {
    const any = this.spare.length > 0;
    for (const buf of this.spare.splice(0)) this.disk.free(buf);
    return any;
  }
}
