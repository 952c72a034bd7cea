// FileHandle: an open file, shaped like node:fs/promises FileHandle where the two overlap.
// Without O_DIRECT, IO goes through the page cache (buffered IO): reads fill it, writes dirty it
// with blocks reserved for delayed allocation, and O_SYNC / O_DSYNC / IS_SYNC writes sync.
import { DioError, type ErrnoName } from "../errors.js";
import { O_ACCMODE, O_APPEND, O_DSYNC, O_RDONLY, O_WRONLY, __O_SYNC } from "../constants.js";
import { FILE_BYTES_MAX, type Filesystem, type Inode, type Stats } from "./filesystem.js";
import { PAGE_BYTES, bitCount, type Page } from "./pagecache.js";

let nextFd = 3;

function fail(code: ErrnoName, syscall: string, message: string): DioError {
  return new DioError(code, syscall, message);
}

/** Checks Node-style (buffer, offset, length) arguments and returns the byte range. */
function bufferRange(buffer: unknown, offset: unknown, length: unknown, syscall: string): { offset: number; length: number } {
  if (!(buffer instanceof Uint8Array)) throw fail("EINVAL", syscall, "buffer must be a Uint8Array");
  const start = offset ?? 0;
  if (typeof start !== "number" || !Number.isInteger(start) || start < 0 || start > buffer.byteLength) {
    throw fail("EINVAL", syscall, `offset ${String(offset)} must be an integer in 0..${buffer.byteLength}`);
  }
  const count = length ?? buffer.byteLength - start;
  if (typeof count !== "number" || !Number.isInteger(count) || count < 0 || start + count > buffer.byteLength) {
    throw fail("EINVAL", syscall, `length ${String(length)} must be a non-negative integer with offset + length <= ${buffer.byteLength}`);
  }
  return { offset: start, length: count };
}

function checkPosition(position: unknown, syscall: string): number | null {
  if (position === null || position === undefined) return null;
  if (typeof position !== "number" || !Number.isInteger(position) || position < 0) {
    throw fail("EINVAL", syscall, `position ${String(position)} must be a non-negative integer, or null for the file position`);
  }
  return position;
}

/** An open file (API.md FileHandle). */
export class FileHandle {
  readonly fd: number;
  readonly flags: number;
  private position = 0;
  private closed = false;

  /** @internal Use Filesystem.open(). */
  constructor(private readonly fs: Filesystem, /** @internal */ readonly inode: Inode, flags: number) {
    this.fd = nextFd++;
    this.flags = flags;
    inode.openCount++;
    fs.registerHandle(this);
  }

  private checkOpen(syscall: string): void {
    if (this.closed) throw fail("EBADF", syscall, `file descriptor ${this.fd} is closed`);
    this.fs.checkAlive(syscall);
  }
  private checkReadable(syscall: string): void {
    this.checkOpen(syscall);
    if ((this.flags & O_ACCMODE) === O_WRONLY) throw fail("EBADF", syscall, `file descriptor ${this.fd} is not open for reading (O_WRONLY)`);
  }
  private checkWritable(syscall: string): void {
    this.checkOpen(syscall);
    if ((this.flags & O_ACCMODE) === O_RDONLY) throw fail("EBADF", syscall, `file descriptor ${this.fd} is not open for writing (O_RDONLY)`);
  }

  async read(buffer: Uint8Array, offset?: number, length?: number, position?: number | null): Promise<{ bytesRead: number; buffer: Uint8Array }> {
    const syscall = position === null || position === undefined ? "read" : "pread64";
    const range = bufferRange(buffer, offset, length, syscall);
    const at = checkPosition(position, syscall);
    this.checkReadable(syscall);
    const from = at ?? this.position;
    const bytesRead = await this.readAt(buffer.subarray(range.offset, range.offset + range.length), from, syscall);
    if (at === null) this.position = from + bytesRead;
    return { bytesRead, buffer };
  }

  async readv(buffers: Uint8Array[], position?: number | null): Promise<{ bytesRead: number; buffers: Uint8Array[] }> {
    const syscall = position === null || position === undefined ? "readv" : "preadv";
    if (!Array.isArray(buffers) || buffers.some((b) => !(b instanceof Uint8Array))) throw fail("EINVAL", syscall, "buffers must be an array of Uint8Array");
    const at = checkPosition(position, syscall);
    this.checkReadable(syscall);
    const from = at ?? this.position;
    const total = buffers.reduce((sum, b) => sum + b.byteLength, 0);
    const joined = new Uint8Array(total);
    const bytesRead = await this.readAt(joined, from, syscall);
    let done = 0;
    for (const b of buffers) {
      if (done >= bytesRead) break;
      const part = Math.min(b.byteLength, bytesRead - done);
      b.set(joined.subarray(done, done + part));
      done += part;
    }
    if (at === null) this.position = from + bytesRead;
    return { bytesRead, buffers };
  }

  async write(buffer: Uint8Array, offset?: number, length?: number, position?: number | null): Promise<{ bytesWritten: number; buffer: Uint8Array }> {
    const syscall = position === null || position === undefined ? "write" : "pwrite64";
    const range = bufferRange(buffer, offset, length, syscall);
    const at = checkPosition(position, syscall);
    this.checkWritable(syscall);
    const bytesWritten = await this.writeAt(buffer.subarray(range.offset, range.offset + range.length), at, syscall);
    return { bytesWritten, buffer };
  }

  async writev(buffers: Uint8Array[], position?: number | null): Promise<{ bytesWritten: number; buffers: Uint8Array[] }> {
    const syscall = position === null || position === undefined ? "writev" : "pwritev";
    if (!Array.isArray(buffers) || buffers.some((b) => !(b instanceof Uint8Array))) throw fail("EINVAL", syscall, "buffers must be an array of Uint8Array");
    const at = checkPosition(position, syscall);
    this.checkWritable(syscall);
    const total = buffers.reduce((sum, b) => sum + b.byteLength, 0);
    const joined = new Uint8Array(total);
    let done = 0;
    for (const b of buffers) {
      joined.set(b, done);
      done += b.byteLength;
    }
    const bytesWritten = await this.writeAt(joined, at, syscall);
    return { bytesWritten, buffers };
  }

  /** Buffered read of up to data.length bytes at `from`, stopping at EOF. */
  private async readAt(data: Uint8Array, from: number, syscall: string): Promise<number> {
    const fs = this.fs;
    const inode = this.inode;
    return inode.lock.run(async () => {
      fs.checkAlive(syscall);
      if (from >= inode.size || data.length === 0) return 0;
      const count = Math.min(data.length, inode.size - from);
      const firstPage = Math.floor(from / PAGE_BYTES);
      const lastPage = Math.floor((from + count - 1) / PAGE_BYTES);
      await this.fillRange(firstPage, lastPage, syscall);
      let done = 0;
      for (let index = firstPage; index <= lastPage; index++) {
        const page = await fs.getPage(inode, index, true, syscall);
        fs.checkAlive(syscall); // a power cut during the await released the page cache
        const start = index === firstPage ? from % PAGE_BYTES : 0;
        const part = Math.min(PAGE_BYTES - start, count - done);
        data.set(page.buf.subarray(start, start + part), done);
        done += part;
      }
      return count;
    });
  }

  /** Reads the uncached pages of [firstPage, lastPage] from disk together (readahead of the request). */
  private async fillRange(firstPage: number, lastPage: number, syscall: string): Promise<void> {
    const fs = this.fs;
    const missing: Page[] = [];
    for (let index = firstPage; index <= lastPage; index++) {
      if (fs.pages.get(this.inode.ino, index) !== undefined) continue;
      if (index * PAGE_BYTES >= this.inode.size) break;
      const page = fs.pages.create(this.inode.ino, index, false); // pageIo() fills every byte
      if (page === undefined) break; // the cache is full: getPage() fills one page at a time
      page.busy++;
      missing.push(page);
    }
    if (missing.length === 0) return;
    // Each page was made busy when created, so that making room for the next could not evict it.
    try {
      await fs.pageIo(this.inode, missing, "read", syscall);
    } catch (error) {
      for (const page of missing) {
        page.busy--;
        fs.pages.drop(page);
      }
      throw error;
    }
    for (const page of missing) page.busy--;
  }

  /**
   * Buffered write: reserve blocks for what the write dirties, copy into pages, extend; then sync
   * when the file or the inode is sync. When the free space runs out part way, the write stops at
   * the last page that fits and returns the short count (ENOSPC only when nothing fits), as write(2).
   */
  private async writeAt(data: Uint8Array, at: number | null, syscall: string): Promise<number> {
    const fs = this.fs;
    const inode = this.inode;
    const written = await inode.lock.run(async () => {
      fs.checkAlive(syscall);
      // O_APPEND: every write goes to the end, whatever position was asked for (as Linux pwrite).
      const from = (this.flags & O_APPEND) !== 0 ? inode.size : at ?? this.position;
      if (data.length === 0) return 0;
      const end = from + data.length;
      if (end > FILE_BYTES_MAX) throw fail("EFBIG", syscall, `writing ${data.length} bytes at ${from} would pass the ${FILE_BYTES_MAX}-byte file size limit`);
      const perPage = PAGE_BYTES / fs.blockSize;
      const firstPage = Math.floor(from / PAGE_BYTES);
      const lastPage = Math.floor((end - 1) / PAGE_BYTES);
      // Per page: the blocks the write touches, and those of them that need a reservation.
      const plan: { index: number; start: number; part: number; touched: number; need: number }[] = [];
      let done = 0;
      for (let index = firstPage; index <= lastPage; index++) {
        const start = index === firstPage ? from % PAGE_BYTES : 0;
        const part = Math.min(PAGE_BYTES - start, data.length - done);
        const firstBlock = Math.floor(start / fs.blockSize);
        const endBlock = Math.ceil((start + part) / fs.blockSize);
        const touched = ((1 << endBlock) - 1) & ~((1 << firstBlock) - 1) & ((1 << perPage) - 1);
        const reserved = fs.pages.get(inode.ino, index)?.reservedMask ?? 0;
        const need = touched & ~fs.mappedMask(inode, index) & ~reserved;
        plan.push({ index, start, part, touched, need });
        done += part;
      }
      // Reserve page by page: as many whole pages as the free space allows.
      let fitting = 0;
      for (const step of plan) {
        const blocks = bitCount(step.need);
        try {
          await fs.reserve(blocks, syscall);
        } catch (error) {
          if (fitting === 0) throw error;
          break;
        }
        fitting++;
      }
      const steps = plan.slice(0, fitting);
      let copied = 0;
      try {
        for (const step of steps) {
          const page = await fs.getPage(inode, step.index, step.part < PAGE_BYTES, syscall);
          fs.checkAlive(syscall); // a power cut during the await released the page cache
          page.buf.set(data.subarray(copied, copied + step.part), step.start);
          page.reservedMask |= step.need;
          step.need = 0;
          fs.pages.markDirty(page, step.touched);
          copied += step.part;
          // i_size moves page by page (write_end), so a writeback that a later page forces (the
          // cache full of dirty pages) sees these pages inside the file.
          if (from + copied > inode.size) {
            inode.size = from + copied;
            fs.touchData(inode);
          }
        }
      } finally {
        fs.unreserve(steps.reduce((sum, step) => sum + bitCount(step.need), 0));
      }
      const newEnd = from + copied;
      inode.mtimeMs = inode.ctimeMs = Date.now();
      fs.touchTimes(inode);
      // pwrite (an explicit position) leaves the file position alone, even with O_APPEND.
      if (at === null) this.position = newEnd;
      if (fs.pages.dirtyPages > fs.pages.dirtyLimitPages) await fs.writebackInode(inode, syscall);
      return copied;
    });
    if (fs.pages.dirtyPages > fs.pages.dirtyLimitPages) await fs.writebackAll(syscall);
    // O_SYNC / O_DSYNC, or an IS_SYNC inode: the write is durable before it returns (spec 6.1).
    const dsync = (this.flags & O_DSYNC) !== 0 || fs.isSyncInode(inode);
    if (dsync && written > 0) await fs.syncInode(inode, (this.flags & __O_SYNC) === 0, syscall);
    return written;
  }

  async sync(): Promise<void> {
    this.checkOpen("fsync");
    await this.fs.syncInode(this.inode, false, "fsync");
  }

  async datasync(): Promise<void> {
    this.checkOpen("fdatasync");
    await this.fs.syncInode(this.inode, true, "fdatasync");
  }

  async truncate(len = 0): Promise<void> {
    if (typeof len !== "number" || !Number.isInteger(len) || len < 0) throw fail("EINVAL", "ftruncate", `length ${String(len)} must be a non-negative integer`);
    this.checkOpen("ftruncate");
    if ((this.flags & O_ACCMODE) === O_RDONLY) throw fail("EINVAL", "ftruncate", `file descriptor ${this.fd} is not open for writing`);
    await this.fs.truncateInode(this.inode, len, "ftruncate");
  }

  async stat(): Promise<Stats> {
    this.checkOpen("fstat");
    return this.fs.statInode(this.inode);
  }

  /** Closes the handle. On a dead filesystem (unmounted, or the disk lost power) the handle is
   *  released and the call rejects with EIO, as every call on it does (API.md). */
  async close(): Promise<void> {
    if (this.closed) throw fail("EBADF", "close", `file descriptor ${this.fd} is already closed`);
    this.closed = true;
    this.fs.unregisterHandle(this);
    this.inode.openCount--;
    this.fs.checkAlive("close");
    if (this.inode.openCount === 0 && this.inode.name === null) await this.fs.evict(this.inode);
  }

  /** @internal Unmount closes what is left open. */
  closeQuietly(): void {
    if (this.closed) return;
    this.closed = true;
    this.inode.openCount--;
  }
}
