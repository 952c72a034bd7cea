// FileHandle: an open file, shaped like node:fs/promises FileHandle where the two overlap.
// Without O_DIRECT, IO goes through the page cache (buffered IO): reads fill it, writes dirty it
// with blocks reserved for delayed allocation, and O_SYNC / O_DSYNC / IS_SYNC writes sync.
import { DioError, type ErrnoName } from "../errors.js";
import { O_ACCMODE, O_APPEND, O_DIRECT, O_DSYNC, O_RDONLY, O_WRONLY, RWF_DSYNC, RWF_SYNC, __O_SYNC } from "../constants.js";
import {
  dioBlockBits, dioRun, dioRunPolled, dioStart, inPlaceOnePass, inPlaceSegments, onePass, passSegments, type DioInFlight, type DioResult,
  type DioRun, type DioSegment, type DioTarget,
} from "../dio.js";
import { bufferRange, checkBuffers, checkPosition, nextFd } from "../args.js";
import { FILE_BYTES_MAX, type Filesystem, type Inode, type Stats, type SyncWork } from "./filesystem.js";
import type { WriteDone } from "../crash/oracle.js";
import type { Mutex } from "./mutex.js";
import type { Disk } from "../disk.js";

/** dioStart() options, shared (never written). */
const WRITE_THROUGH = Object.freeze({ writeThrough: true });
const PLAIN = Object.freeze({});
const POLLED = Object.freeze({ polled: true });
const NO_BYTES = new Uint8Array(0);
const POLLED_WRITE_THROUGH = Object.freeze({ writeThrough: true, polled: true });
const NO_STEP = (): void => undefined;

/** The inode lock of a synchronous read, let go of once its bios are submitted or when the call
 *  ends, whichever comes first. */
class HeldLock {
  private held = true;
  constructor(private readonly lock: Mutex) {}
  readonly release = (): void => {
    if (!this.held) return;
    this.held = false;
    this.lock.release();
  };
}

/** -EIOCBQUEUED: what direct_IO returns for a queued AIO (the legacy caller synced with it). */
const EIOCBQUEUED = 529;
import { PAGE_BYTES, bitCount, type Page } from "./pagecache.js";


function fail(code: ErrnoName, syscall: string, message: string): DioError {
  return new DioError(code, syscall, message);
}

/** An open file (API.md FileHandle). */
export class FileHandle {
  readonly fd: number;
  readonly flags: number;
  private position = 0;
  private closed = false;

  /** @internal Use Filesystem.open(). */
  constructor(private readonly fs: Filesystem, /** @internal */ readonly inode: Inode, flags: number) {
    this.fd = nextFd();
    this.flags = flags;
    // A subclass for something that is not a file of a filesystem (the raw device) passes none.
    if (inode !== null) {
      inode.openCount++;
      fs.registerHandle(this);
    }
  }

  /** @internal Whether close() has run. */
  /** @internal The disk this handle's IO goes to. */
  ioDisk(): Disk {
    return this.fs.disk;
  }

  get isClosed(): boolean {
    return this.closed;
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
    const target = bufferRange(buffer, offset, length, syscall);
    const at = checkPosition(position, syscall);
    this.checkReadable(syscall);
    const from = at ?? this.position;
    const bytesRead = this.direct ? await this.directRead([target], from, syscall) : await this.readAt(target, from, syscall);
    if (at === null) this.position = from + bytesRead;
    return { bytesRead, buffer };
  }

  async readv(buffers: Uint8Array[], position?: number | null): Promise<{ bytesRead: number; buffers: Uint8Array[] }> {
    const syscall = position === null || position === undefined ? "readv" : "preadv";
    checkBuffers(buffers, syscall);
    const at = checkPosition(position, syscall);
    this.checkReadable(syscall);
    const from = at ?? this.position;
    if (this.direct) {
      const bytesRead = await this.directRead(buffers, from, syscall);
      if (at === null) this.position = from + bytesRead;
      return { bytesRead, buffers };
    }
    const total = buffers.reduce((sum, b) => sum + b.length, 0);
    const joined = new Uint8Array(total);
    const bytesRead = await this.readAt(joined, from, syscall);
    let done = 0;
    for (const b of buffers) {
      if (done >= bytesRead) break;
      const part = Math.min(b.length, bytesRead - done);
      b.set(joined.subarray(done, done + part));
      done += part;
    }
    if (at === null) this.position = from + bytesRead;
    return { bytesRead, buffers };
  }

  async write(buffer: Uint8Array, offset?: number, length?: number, position?: number | null): Promise<{ bytesWritten: number; buffer: Uint8Array }> {
    const syscall = position === null || position === undefined ? "write" : "pwrite64";
    const data = bufferRange(buffer, offset, length, syscall);
    const at = checkPosition(position, syscall);
    this.checkWritable(syscall);
    const record = this.recordWrite(at, [data], syscall);
    let bytesWritten = 0;
    try {
      bytesWritten = this.direct ? await this.directWrite([data], at, syscall, 0, record) : await this.writeAt(data, at, syscall, record);
    } finally {
      record?.(bytesWritten, this.isDsync(0));
    }
    return { bytesWritten, buffer };
  }

  async writev(buffers: Uint8Array[], position?: number | null): Promise<{ bytesWritten: number; buffers: Uint8Array[] }> {
    const syscall = position === null || position === undefined ? "writev" : "pwritev";
    checkBuffers(buffers, syscall);
    const at = checkPosition(position, syscall);
    this.checkWritable(syscall);
    const record = this.recordWrite(at, buffers, syscall);
    let bytesWritten = 0;
    try {
      if (this.direct) {
        bytesWritten = await this.directWrite(buffers, at, syscall, 0, record);
      } else {
        const total = buffers.reduce((sum, b) => sum + b.length, 0);
        const joined = new Uint8Array(total);
        let done = 0;
        for (const b of buffers) {
          joined.set(b, done);
          done += b.length;
        }
        bytesWritten = await this.writeAt(joined, at, syscall, record);
      }
    } finally {
      record?.(bytesWritten, this.isDsync(0));
    }
    return { bytesWritten, buffers };
  }

  // ---- synchronous calls: the same engine, waited for by polling the device ------------------

  /**
   * pread(2)/read(2) as a synchronous call, like node:fs readSync(): the number of bytes read.
   * Only with O_DIRECT (ENOTSUP otherwise). The direct-IO engine runs exactly as for read(), and
   * the call waits for its bios by polling the device on the caller's stack, as a RWF_HIPRI
   * caller spins in blk_poll() rather than sleeping: no promise, no event-loop turn. What a
   * synchronous call cannot wait for (see writeSync()) fails it with EAGAIN before anything
   * happens, as RWF_NOWAIT does.
   */
  readSync(buffer: Uint8Array, offset?: number, length?: number, position?: number | null): number {
    const syscall = position === null || position === undefined ? "read" : "pread64";
    const target = bufferRange(buffer, offset, length, syscall);
    return this.onePolled(false, target, checkPosition(position, syscall), syscall);
  }

  /** The one-buffer list of readSync()/writeSync(), reused: nothing keeps it past the call, and
   *  a call that finds it in use (one refused inside another's device step) makes its own. */
  private readonly oneBuffer: Uint8Array[] = [NO_BYTES];

  /** readPolled()/writePolled() of one buffer, through the reused list. */
  private onePolled(write: boolean, data: Uint8Array, at: number | null, syscall: string): number {
    const one = this.oneBuffer[0] === NO_BYTES ? this.oneBuffer : [data];
    one[0] = data;
    try {
      return write ? this.writePolled(one, at, syscall) : this.readPolled(one, at, syscall);
    } finally {
      one[0] = NO_BYTES; // not kept
    }
  }

  /** preadv(2) as a synchronous call (see readSync()). */
  readvSync(buffers: Uint8Array[], position?: number | null): number {
    const syscall = position === null || position === undefined ? "readv" : "preadv";
    checkBuffers(buffers, syscall);
    return this.readPolled(buffers, checkPosition(position, syscall), syscall);
  }

  /**
   * pwrite(2)/write(2) as a synchronous call, like node:fs writeSync(): the number of bytes
   * written. Only with O_DIRECT (ENOTSUP otherwise). The direct-IO engine runs exactly as for
   * write(), O_SYNC/O_DSYNC included (the caller's sync, a cache flush or a metadata commit, is
   * polled too), and its bios are waited for by polling the device (see readSync()).
   * EAGAIN, before anything happens, when the call would have to wait for something only an
   * asynchronous call can do: the inode lock held by an asynchronous call in flight, dirty
   * page-cache pages of the file to write back, a hole inside the file (the write would fall back
   * to the page cache), a partial last block to zero through the page cache before extending the
   * file, or a metadata commit in progress when this call may need one. Retry with write().
   */
  writeSync(buffer: Uint8Array, offset?: number, length?: number, position?: number | null): number {
    const syscall = position === null || position === undefined ? "write" : "pwrite64";
    const data = bufferRange(buffer, offset, length, syscall);
    return this.onePolled(true, data, checkPosition(position, syscall), syscall);
  }

  /** pwritev(2) as a synchronous call (see writeSync()). */
  writevSync(buffers: Uint8Array[], position?: number | null): number {
    const syscall = position === null || position === undefined ? "writev" : "pwritev";
    checkBuffers(buffers, syscall);
    return this.writePolled(buffers, checkPosition(position, syscall), syscall);
  }

  /** fsync(2) as a synchronous call: a metadata commit when the file's metadata needs one,
   *  otherwise a cache flush, polled. EAGAIN when the file has dirty page-cache pages (writing
   *  them back is asynchronous), its inode lock or the commit lock is held by an asynchronous call. */
  syncSync(): void {
    this.checkOpen("fsync");
    this.fs.disk.device.checkPollable("fsync");
    this.recordSyncNow("fsync", () => this.fs.syncInodePolled(this.inode, false, "fsync"));
  }

  /** fdatasync(2) as a synchronous call (see syncSync()). */
  datasyncSync(): void {
    this.checkOpen("fdatasync");
    this.fs.disk.device.checkPollable("fdatasync");
    this.recordSyncNow("fdatasync", () => this.fs.syncInodePolled(this.inode, true, "fdatasync"));
  }

  /** @internal readSync()/readvSync() after their argument checks (the raw device overrides it). */
  protected readPolled(buffers: Uint8Array[], at: number | null, syscall: string): number {
    this.checkReadable(syscall);
    this.checkPolled(syscall);
    const from = at ?? this.position;
    const bytesRead = this.directReadPolled(buffers, from, syscall);
    if (at === null) this.position = from + bytesRead;
    return bytesRead;
  }

  /** @internal writeSync()/writevSync() after their argument checks (the raw device overrides it). */
  protected writePolled(buffers: Uint8Array[], at: number | null, syscall: string): number {
    this.checkWritable(syscall);
    this.checkPolled(syscall);
    const record = this.recordWrite(at, buffers, syscall);
    let bytesWritten = 0;
    try {
      bytesWritten = this.directWritePolled(buffers, at, syscall, record);
    } finally {
      record?.(bytesWritten, this.isDsync(0));
    }
    return bytesWritten;
  }

  /** Synchronous calls go through the direct-IO engine only, and never from inside the device's
   *  own step (EDEADLK, before anything happens). */
  protected checkPolled(syscall: string): void {
    if ((this.flags & O_DIRECT) === 0) {
      throw fail("ENOTSUP", syscall, `file descriptor ${this.fd} is not O_DIRECT: synchronous calls run the direct-IO engine only (buffered IO goes through the page cache, whose IO is asynchronous); use the promise form`);
    }
    this.ioDisk().device.checkPollable(syscall);
  }

  /** EAGAIN: the synchronous call would have to wait for `why`. */
  private wouldBlock(syscall: string, why: string): DioError {
    return fail("EAGAIN", syscall, `${why}; a synchronous call cannot wait for that (use the promise form)`);
  }

  /** directRead() for a synchronous call: the same steps, the wait polled. */
  private directReadPolled(buffers: Uint8Array[], from: number, syscall: string): number {
    const fs = this.fs;
    const inode = this.inode;
    const target = this.dioTarget();
    const dioBits = dioBlockBits(target, buffers, from, syscall);
    let total = 0;
    for (const b of buffers) total += b.length;
    if (total === 0) return 0; // before any lock or allocation
    if (!inode.lock.tryAcquire()) throw this.wouldBlock(syscall, `inode ${inode.ino} is locked by an asynchronous call in flight`);
    const held = new HeldLock(inode.lock);
    try {
      fs.checkAlive(syscall);
      if (from >= inode.size) return 0; // the 4.x early check: nothing to read at or past EOF
      if (fs.pages.hasDirty(inode.ino)) throw this.wouldBlock(syscall, `inode ${inode.ino} has dirty page-cache pages to write back first`);
      inode.dioBegin();
      let run: DioRun;
      try {
        run = dioRunPolled(target, "read", buffers, from, dioBits, syscall, held.release, POLLED);
      } finally {
        inode.dioEnd();
      }
      if (run.error !== 0) throw this.errnoError(run.error, syscall);
      return run.done;
    } finally {
      held.release();
    }
  }

  /** directWrite() for a synchronous call: the same steps, the waits polled, and EAGAIN before
   *  anything changes for what only an asynchronous call can wait for (writeSync()). */
  private directWritePolled(buffers: Uint8Array[], at: number | null, syscall: string, landed: { place(at: number): void } | null): number {
    const fs = this.fs;
    const inode = this.inode;
    const target = this.dioTarget();
    const append = (this.flags & O_APPEND) !== 0;
    const checkedBits = append ? 0 : dioBlockBits(target, buffers, at ?? this.position, syscall);
    let total = 0;
    for (const b of buffers) total += b.length;
    const dsync = this.isDsync(0);
    const datasync = !this.isFullSync(0);
    if (!inode.lock.tryAcquire()) throw this.wouldBlock(syscall, `inode ${inode.ino} is locked by an asynchronous call in flight`);
    let work: SyncWork | null = null;
    let fua = false;
    let from: number;
    let written: number;
    let commitHeld = false;
    try {
      // Under the inode lock: the write itself. Outside it (below): the caller's sync, still
      // holding the commit lock when the write took it.
      try {
        // (Alive: checked by writePolled() just before, with nothing run since.)
        from = append ? inode.size : at ?? this.position;
        landed?.place(from);
        const dioBits = append || at === null ? dioBlockBits(target, buffers, from, syscall) : checkedBits;
        if (from + total > FILE_BYTES_MAX) throw fail("EFBIG", syscall, `writing ${total} bytes at ${from} would pass the ${FILE_BYTES_MAX}-byte file size limit`);
        this.checkWriteNoWait(from, total, syscall);
        // A write that may commit (its sync, or ENOSPC's reclaim) holds the commit lock throughout.
        if (total > 0 && (dsync || from + total > inode.size)) {
          if (!fs.holdCommitPolled()) throw this.wouldBlock(syscall, "a metadata commit started by an asynchronous call is in progress");
          commitHeld = true;
        }
        // The seed's sync-work record, for synchronous dsync writes too (spec 3.1), freed unused.
        if (fs.semantics === "seed" && dsync) {
          fs.initDioQueueNow(syscall);
          work = fs.allocSyncWork(inode, at ?? this.position, syscall);
        }
        fs.invalidateRange(inode, from, total);
        inode.dioBegin();
        let run: DioRun;
        try {
          run = dioRunPolled(target, "write", buffers, from, dioBits, syscall, NO_STEP, fs.semantics === "iomap" && dsync && datasync ? POLLED_WRITE_THROUGH : POLLED);
        } finally {
          this.writeDioEnd(from, work);
          work = null;
        }
        fua = run.fua;
        const done = this.directWriteRan(run, from, total, syscall);
        if (run.holeAt && done < total) throw new Error(`dioemu: a synchronous direct write of inode ${inode.ino} reached a hole its check did not see`);
        written = this.directWriteEnd(from, done, at);
      } finally {
        inode.lock.release();
        if (work !== null) fs.freeSyncWork(work, inode);
      }
      // The caller's sync (6.1), polled; its error replaces the count.
      if (!dsync || written <= 0 || fua) return written;
      const err = fs.syncRangePolled(inode, datasync, syscall);
      if (err < 0) throw DioError.fromErrno(err, syscall, `the sync after the direct write failed with errno ${-err}`);
      return written;
    } finally {
      if (commitHeld) fs.releaseCommitPolled();
    }
  }

  /** What a synchronous write of `total` bytes at `from` cannot do, refused before it starts
   *  (the commit lock it may need is taken next, by the caller). */
  private checkWriteNoWait(from: number, total: number, syscall: string): void {
    const fs = this.fs;
    const inode = this.inode;
    const ino = inode.ino;
    const end = from + total;
    if (fs.pages.hasDirty(ino)) throw this.wouldBlock(syscall, `inode ${ino} has dirty page-cache pages to write back first`);
    // (As write() does, a zero-length write past EOF zeroes the last block's tail too.)
    if (end > inode.size && inode.size % fs.blockSize !== 0) {
      throw this.wouldBlock(syscall, `inode ${ino} ends inside a block (size ${inode.size}): extending it zeroes that block's tail through the page cache`);
    }
    if (total > 0 && from < inode.size && fs.rangeHasHole(inode, from, Math.min(end, inode.size))) {
      throw this.wouldBlock(syscall, `the range ${from}..${end} of inode ${ino} has a hole inside the file: the direct write would fall back to the page cache`);
    }
  }

  /** @internal Runs a synchronous sync of this file, recorded for the oracle. */
  recordSyncNow(how: string, sync: () => void): void {
    const recorder = this.fs.recorder;
    const name = this.inode?.name;
    const done = recorder !== undefined && name !== null && name !== undefined ? recorder.syncStart(name, how) : undefined;
    sync();
    done?.(true);
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
        fs.unpin(page); // used synchronously below, before anything else can run
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

  /** Buffered write at `at` (null: the file position), then the sync a sync file or inode needs. */
  private async writeAt(data: Uint8Array, at: number | null, syscall: string, landed?: { place(at: number): void } | null): Promise<number> {
    const fs = this.fs;
    const inode = this.inode;
    const written = await inode.lock.run(async () => {
      fs.checkAlive(syscall);
      // O_APPEND: every write goes to the end, whatever position was asked for (as Linux pwrite).
      const from = (this.flags & O_APPEND) !== 0 ? inode.size : at ?? this.position;
      landed?.place(from);
      const copied = await this.writeLocked(data, from, syscall);
      // pwrite (an explicit position) leaves the file position alone, even with O_APPEND.
      if (at === null) this.position = from + copied;
      return copied;
    });
    if (fs.pages.dirtyPages > fs.pages.dirtyLimitPages) await fs.writebackAll(syscall);
    await this.syncAfterWrite(written, syscall);
    return written;
  }

  /** generic_write_sync(): O_SYNC / O_DSYNC, or an IS_SYNC inode, sync before returning (6.1). */
  private async syncAfterWrite(written: number, syscall: string): Promise<void> {
    const dsync = (this.flags & O_DSYNC) !== 0 || this.fs.isSyncInode(this.inode);
    if (dsync && written > 0) await this.fs.syncInode(this.inode, (this.flags & __O_SYNC) === 0, syscall);
  }

  /**
   * The buffered write itself, with the inode lock held: reserve blocks for what the write dirties,
   * copy into pages, extend. When the free space runs out part way, the write stops at the last
   * page that fits and returns the short count (ENOSPC only when nothing fits), as write(2).
   */
  private async writeLocked(data: Uint8Array, from: number, syscall: string): Promise<number> {
    const fs = this.fs;
    const inode = this.inode;
    if (data.length === 0) return 0;
    if (from + data.length > inode.size) await fs.zeroEofTail(inode, syscall);
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
        fs.unpin(page); // used synchronously below, before anything else can run
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
    fs.stampTimes(inode);
    fs.touchTimes(inode);
    if (fs.pages.dirtyPages > fs.pages.dirtyLimitPages) await fs.writebackInode(inode, syscall);
    return copied;
  }

  /** O_DIRECT: IO goes through the direct-IO engine, not the page cache. */
  private get direct(): boolean {
    return (this.flags & O_DIRECT) !== 0;
  }

  /** The engine's view of this file: DIO_LOCKING | DIO_SKIP_HOLES, get_block from the core. */
  private cachedTarget: DioTarget | undefined;
  private dioTarget(): DioTarget {
    this.cachedTarget ??= this.makeDioTarget();
    return this.cachedTarget;
  }
  private makeDioTarget(): DioTarget {
    const fs = this.fs;
    const inode = this.inode;
    return {
      disk: fs.disk, ino: inode.ino, fsBits: Math.log2(fs.blockSize), semantics: fs.semantics,
      size: () => inode.size, skipHoles: true,
      allocated: () => fs.touchData(inode),
      // On ENOSPC the pass is mapped again: first the blocks it allocated past EOF go back, so
      // that the retry sees them new and zeroes what it must, then a commit frees what it can.
      mayReclaim: () => fs.hasPendingFree(),
      reclaim: async (syscall) => {
        if (!fs.hasPendingFree()) return false; // a commit would free nothing: ENOSPC stands
        fs.truncateBlocks(inode, Math.ceil(inode.size / fs.blockSize));
        return fs.reclaim(syscall);
      },
      reclaimPolled: (syscall) => {
        if (!fs.hasPendingFree()) return false;
        fs.truncateBlocks(inode, Math.ceil(inode.size / fs.blockSize));
        return fs.reclaimPolled(syscall);
      },
      // A call of several passes moves i_size after each, once its data is written, so that a
      // later pass's trim past EOF never takes an earlier pass's blocks.
      extended: (end) => {
        if (end > inode.size) {
          inode.size = end;
          fs.touchData(inode);
        }
      },
      alive: (syscall) => fs.checkAlive(syscall),
      metadataDirty: () => fs.metadataDirty(inode),
    };
  }

  /**
   * O_DIRECT read (spec 2.1-2.3, 2.12-2.14): alignment first, then i_mutex, writeback of the
   * range, i_dio_count up, map and submit, i_mutex dropped once every bio is submitted, wait,
   * clamp at EOF, i_dio_count down.
   */
  private async directRead(buffers: Uint8Array[], from: number, syscall: string): Promise<number> {
    const fs = this.fs;
    const inode = this.inode;
    const target = this.dioTarget();
    const dioBits = dioBlockBits(target, buffers, from, syscall);
    const total = buffers.reduce((sum, b) => sum + b.length, 0);
    if (total === 0) return 0; // before any lock or allocation
    const unlock = inode.lock.tryLock() ?? (await inode.lock.lock());
    let locked = true;
    const release = (): void => {
      if (locked) {
        locked = false;
        unlock();
      }
    };
    try {
      fs.checkAlive(syscall);
      if (from >= inode.size) return 0; // the 4.x early check: nothing to read at or past EOF
      if (fs.pages.hasDirty(inode.ino)) await fs.writebackInode(inode, syscall);
      inode.dioBegin();
      let run;
      try {
        run = await dioRun(target, "read", buffers, from, dioBits, syscall, release);
      } finally {
        inode.dioEnd();
      }
      if (run.error !== 0) throw this.errnoError(run.error, syscall);
      return run.done;
    } finally {
      release();
    }
  }

  /**
   * O_DIRECT write (spec 2.1-2.3, 2.8, 2.12-2.14, 6.1), i_mutex held for the whole call: write back
   * and invalidate the range, i_dio_count up, map (allocating) and submit, wait; a hole inside
   * i_size stops the direct part and the rest goes through the page cache (written back and
   * invalidated), the call returning the full count; invalidate again; i_size after the data;
   * i_dio_count down; then the O_SYNC/O_DSYNC sync.
   */
  private async directWrite(buffers: Uint8Array[], at: number | null, syscall: string, rwFlags = 0, landed?: { place(at: number): void } | null): Promise<number> {
    const fs = this.fs;
    const inode = this.inode;
    const target = this.dioTarget();
    const append = (this.flags & O_APPEND) !== 0;
    // Alignment is checked before anything happens; with O_APPEND the offset is known only under
    // the lock (the position given is ignored), so it is checked there.
    const checkedBits = append ? 0 : dioBlockBits(target, buffers, at ?? this.position, syscall);
    let total = 0;
    for (const b of buffers) total += b.length;
    const dsync = this.isDsync(rwFlags);
    const datasync = !this.isFullSync(rwFlags);
    // The seed allocates its sync-work record for every dsync direct write, synchronous ones too
    // (spec 3.1b); the submitter completes the dio and frees it unused (assertion 34).
    let work: SyncWork | null = null;
    if (fs.semantics === "seed" && dsync) {
      if (fs.dioQueue === null) await fs.initDioQueue(syscall);
      work = fs.allocSyncWork(inode, at ?? this.position, syscall);
    }
    let fua = false;
    let syncFrom = 0;
    let written: number;
    // i_mutex for the whole write (taken here, at once when it is free).
    const unlock = inode.lock.tryLock() ?? (await inode.lock.lock());
    try {
      fs.checkAlive(syscall);
      const from = append ? inode.size : at ?? this.position;
      landed?.place(from);
      syncFrom = from;
      const dioBits = append || at === null ? dioBlockBits(target, buffers, from, syscall) : checkedBits;
      if (from + total > FILE_BYTES_MAX) throw fail("EFBIG", syscall, `writing ${total} bytes at ${from} would pass the ${FILE_BYTES_MAX}-byte file size limit`);
      if (from + total > inode.size && inode.size % fs.blockSize !== 0) await fs.zeroEofTail(inode, syscall);
      if (fs.pages.hasDirty(inode.ino)) await fs.writebackInode(inode, syscall);
      fs.invalidateRange(inode, from, total);
      inode.dioBegin();
      let run;
      try {
        run = await dioRun(target, "write", buffers, from, dioBits, syscall, NO_STEP, fs.semantics === "iomap" && dsync && datasync ? WRITE_THROUGH : PLAIN);
      } finally {
        this.writeDioEnd(from, work);
        work = null;
      }
      fua = run.fua;
      let done = this.directWriteRan(run, from, total, syscall);
      if (run.holeAt && done < total) {
        // The rest goes through the page cache, is written back and invalidated (3.x
        // __generic_file_aio_write); the call still returns the full count, or, if the buffered
        // part fails, what the direct part wrote.
        done = await this.writeRestBuffered(buffers, from, done, syscall);
      }
      written = this.directWriteEnd(from, done, at);
    } finally {
      unlock();
      if (work !== null) fs.freeSyncWork(work, inode);
    }
    // The caller syncs (6.1): datasync for O_DSYNC and IS_SYNC inodes, full for O_SYNC; not after
    // a write-through (iomap FUA) write. Its error replaces the count.
    if (!dsync || written <= 0 || fua) return written;
    const res = await this.callerSync(written, syncFrom, dsync, datasync, fua, syscall);
    if (res < 0) throw DioError.fromErrno(res, syscall, `the sync after the direct write failed with errno ${-res}`);
    return res;
  }

  /** A direct write's dio is over: i_dio_count down, the step reported, the seed's sync-work
   *  record (a synchronous call's, unused) freed. */
  private writeDioEnd(from: number, work: SyncWork | null): void {
    this.inode.dioEnd();
    this.fs.dioStep("dio_end", this.inode, from);
    if (work !== null) this.fs.freeSyncWork(work, this.inode);
  }

  /** After a direct write's dio: i_size after the data, the blocks a failed or short write
   *  allocated past it given back, and its error thrown when nothing was written. Returns the
   *  count written directly. */
  private directWriteRan(run: DioRun, from: number, total: number, syscall: string): number {
    const fs = this.fs;
    const inode = this.inode;
    const done = run.done;
    if (done > 0 && from + done > inode.size) {
      inode.size = from + done;
      fs.touchData(inode);
    }
    // Blocks a failed or short write allocated past i_size go back (3.x ext2_write_failed):
    // mapped but never written, they would read back stale once the file grows.
    if (run.error !== 0 || (done < total && !run.holeAt)) fs.truncateBlocks(inode, Math.ceil(inode.size / fs.blockSize));
    if (run.error !== 0 && done === 0) throw this.errnoError(run.error, syscall);
    return done;
  }

  /** The end of a direct write under the inode lock: the range invalidated again, the file times,
   *  the file position. Returns the count. */
  private directWriteEnd(from: number, done: number, at: number | null): number {
    const fs = this.fs;
    fs.invalidateRange(this.inode, from, done);
    if (done > 0) {
      fs.stampTimes(this.inode);
      fs.touchTimes(this.inode);
    }
    if (at === null) this.position = from + done;
    return done;
  }

  /** An AIO carried out as the synchronous call would be; `post` gets its result. */
  private async aioSynchronous(
    op: "read" | "write", buffers: Uint8Array[], offset: number, rwFlags: number, syscall: string,
    post: (res: number) => void, landed?: { place(at: number): void } | null,
  ): Promise<void> {
    post(op === "write" ? await this.directWrite(buffers, offset, syscall, rwFlags, landed) : await this.directRead(buffers, offset, syscall));
  }

  /**
   * @internal AIO on an O_DIRECT file (spec 2.4, 2.12, 3, 4, 6.3, 7): returns once io_submit's
   * part is done (at once, or a promise when it had to wait); `post(res)` is aio_complete(),
   * called exactly once, when the event is posted. Throws (or rejects) what the request fails
   * with before it is set up.
   *
   * A request is queued (-EIOCBQUEUED: async, set up whole or a read, no submission error) once
   * its bios are submitted and the inode lock is released; the last bio's completion then
   * completes it, in the order its semantics prescribe (completeQueued()). An extending write, a
   * write cut by a hole, a request of several passes, a failed submission, or one whose bios all
   * completed before the submitter let go, is completed by the submitter: for a dsync write the
   * caller syncs (a positive count) and then the AIO core posts the event.
   *
   * The common request, which waits for nothing before its bios go out (the inode lock free, no
   * dirty pages, its queue already installed, buffers in the arena, one pass, no sync-work record
   * to allocate), is set up here without an await; any other goes through aioDirectWaiting(), the
   * same steps with their waits.
   */
  aioDirect(
    op: "read" | "write", buffers: Uint8Array[], offset: number, rwFlags: number, iocb: unknown, syscall: string,
    post: (res: number) => void, landed?: { place(at: number): void } | null,
  ): void | Promise<void> {
    const fs = this.fs;
    const inode = this.inode;
    const sem = fs.semantics;
    if (op === "write") this.checkWritable(syscall);
    else this.checkReadable(syscall);
    const append = op === "write" && (this.flags & O_APPEND) !== 0;
    const target = this.dioTarget();
    const dioBits = dioBlockBits(target, buffers, append ? 0 : offset, syscall);
    const dsync = op === "write" && this.isDsync(rwFlags);
    const total = append ? -1 : inPlaceOnePass(fs.disk, buffers, offset, fs.blockSize);
    const needsQueue = dsync ? sem !== "legacy" : sem === "iomap" && op === "write";
    if (total <= 0 || (op === "write" ? offset + total > inode.size : offset >= inode.size) || inode.lock.locked ||
      (needsQueue && fs.dioQueue === null) || this.beforeSubmitterDrop !== undefined || fs.pages.hasDirty(inode.ino)) {
      return this.aioDirectWaiting(op, buffers, offset, rwFlags, iocb, syscall, post, landed);
    }
    // The seed's record, before the inode lock as there (3.1).
    let work: SyncWork | null = null;
    if (sem === "seed" && dsync) {
      work = fs.allocSyncWork(inode, offset, syscall);
      work.iocb = iocb;
    }
    // Free when looked at above; a step observer (onDioStep) may have taken it since.
    if (!inode.lock.tryAcquire()) return this.aioDirectWaiting(op, buffers, offset, rwFlags, iocb, syscall, post, landed, work);
    const call = new AioDirectCall(this, op, buffers, offset, total, dsync, !this.isFullSync(rwFlags), work, syscall, post);
    call.held = inode.lock;
    let dio;
    try {
      fs.checkAlive(syscall);
      if (op === "write") fs.invalidateRange(inode, offset, total);
      const segments = inPlaceSegments(buffers);
      inode.dioBegin();
      try {
        dio = dioStart(target, op, segments, offset, dioBits, syscall, call, sem === "iomap" && dsync && call.datasync ? WRITE_THROUGH : PLAIN);
      } catch (error) {
        inode.dioEnd();
        throw error;
      }
    } catch (error) {
      call.unlock();
      if (work !== null) fs.freeSyncWork(work, inode);
      throw error;
    }
    const next = dio instanceof Promise ? this.aioDirectStarted(call, dio) : this.aioDirectSubmitted(call, dio);
    if (next === undefined || work === null) return next;
    return this.freeUnownedAfter(call, next);
  }

  /** As aioDirectWaiting()'s finally: a record no queued completion took is freed at the end.
   *  (Apart from aioDirect(), whose common call then allocates no closure context.) */
  private async freeUnownedAfter(call: AioDirectCall, next: Promise<void>): Promise<void> {
    try {
      await next;
    } finally {
      this.freeUnowned(call);
    }
  }

  /** Frees the sync-work record of a request, unless a queued completion owns it. */
  private freeUnowned(call: AioDirectCall): void {
    if (call.recordOwned || call.work === null) return;
    this.fs.freeSyncWork(call.work, this.inode);
    call.work = null;
  }

  /** aioDirect() for a request that may have to wait before its bios go out. */
  private async aioDirectWaiting(
    op: "read" | "write", buffers: Uint8Array[], offset: number, rwFlags: number, iocb: unknown, syscall: string,
    post: (res: number) => void, landed?: { place(at: number): void } | null, allocated: SyncWork | null = null,
  ): Promise<void> {
    const fs = this.fs;
    const inode = this.inode;
    const target = this.dioTarget();
    const append = op === "write" && (this.flags & O_APPEND) !== 0;
    let total = 0;
    for (const b of buffers) total += b.length;
    const dioBits = dioBlockBits(target, buffers, append ? 0 : offset, syscall);
    const dsync = op === "write" && this.isDsync(rwFlags);
    const datasync = !this.isFullSync(rwFlags);
    const sem = fs.semantics;
    const extending = op === "write" && (append || offset + total > inode.size);
    if (total === 0 || extending || !onePass(fs.disk, buffers, offset, fs.blockSize)) {
      // (A record the no-await path allocated goes: the synchronous call makes its own.)
      if (allocated !== null) fs.freeSyncWork(allocated, inode);
      return this.aioSynchronous(op, buffers, offset, rwFlags, syscall, post, landed);
    }
    // Setup that may allocate, before the inode lock: the seed's queue and record for a dsync
    // write (3.1: before is_async is even known), 3.11's queue for an async dsync write (4), and
    // iomap's for every async write (4.14 on: a file with cached pages defers its completion).
    let work: SyncWork | null = allocated;
    if (sem === "seed" && dsync && work === null) {
      if (fs.dioQueue === null) await fs.initDioQueue(syscall);
      work = fs.allocSyncWork(inode, offset, syscall);
      work.iocb = iocb;
    } else if (((sem === "merged" && dsync) || (sem === "iomap" && op === "write")) && fs.dioQueue === null) {
      await fs.initDioQueue(syscall);
    }
    const call = new AioDirectCall(this, op, buffers, offset, total, dsync, datasync, work, syscall, post);
    try {
      call.held = inode.lock.tryLock() ?? await inode.lock.lock();
      try {
        fs.checkAlive(syscall);
        // Decided again under the lock: a truncate that got the lock first may have made this
        // write extending, and an extending write is carried out synchronously.
        if ((op === "write" && offset + total > inode.size) || (op === "read" && offset >= inode.size)) {
          call.unlock();
          this.freeUnowned(call);
          if (op === "read") return post(0);
          return await this.aioSynchronous(op, buffers, offset, rwFlags, syscall, post, landed);
        }
        if (fs.pages.hasDirty(inode.ino)) await fs.writebackInode(inode, syscall);
        if (op === "write") fs.invalidateRange(inode, offset, total);
        call.segments = passSegments(fs.disk, buffers);
      } catch (error) {
        call.unlock();
        throw error;
      }
      const segments = call.segments;
      if (op === "write") for (const seg of segments.segments) if (seg.bounce !== undefined) seg.bounce.set(seg.user);
      inode.dioBegin();
      let dio;
      try {
        const writeThrough = sem === "iomap" && dsync && datasync;
        const started = dioStart(target, op, segments.segments, offset, dioBits, syscall, call, { writeThrough });
        dio = started instanceof Promise ? await started : started;
      } catch (error) {
        segments.release();
        inode.dioEnd();
        call.unlock();
        throw error;
      }
      if (this.beforeSubmitterDrop !== undefined && call.isQueued(dio)) {
        // The test hook runs with the request queued and the lock released, before the drop.
        call.queued = true;
        call.recordOwned = true;
        call.unlock();
        await this.beforeSubmitterDrop();
        return await this.aioDirectSubmitted(call, dio);
      }
      return await this.aioDirectSubmitted(call, dio);
    } finally {
      // The record is the queue's once a queued completion owns it; otherwise freed here.
      this.freeUnowned(call);
    }
  }

  /** After a dioStart() that had to wait (an ENOSPC commit): as aioDirectSubmitted(). */
  private async aioDirectStarted(call: AioDirectCall, started: Promise<DioInFlight>): Promise<void> {
    let dio;
    try {
      dio = await started;
    } catch (error) {
      this.inode.dioEnd();
      call.unlock();
      throw error;
    }
    return this.aioDirectSubmitted(call, dio);
  }

  /**
   * Every bio of the request is submitted, the inode lock held (call.unlock() lets go of it). A queued
   * request lets go of the lock and of the submitter's reference and is done here (unless the
   * legacy caller syncs now); any other is waited for and completed by the submitter.
   */
  private aioDirectSubmitted(call: AioDirectCall, dio: DioInFlight): void | Promise<void> {
    const fs = this.fs;
    const inode = this.inode;
    if (call.isQueued(dio)) {
      call.queued = true;
      call.unlock();
      call.recordOwned = true;
      dio.drop();
      if (call.bySubmitter === undefined) {
        // -EIOCBQUEUED. Before the 3.11 fix the caller synced now, with that negative count:
        // an empty range, but the flush went out before the data had completed (spec 7.2).
        // XFS's caller synced only a positive count, so it issued no flush at all.
        if (fs.semantics === "legacy" && call.dsync && !fs.legacyXfs) {
          fs.dioStep("submit_sync", inode, call.offset);
          return fs.syncRange(inode, call.offset, -EIOCBQUEUED, call.datasync, call.syscall).then(() => undefined);
        }
        return;
      }
      return this.aioDirectCompletedFirst(call, call.bySubmitter);
    }
    return this.aioDirectBySubmitter(call, dio);
  }

  /** A queued request whose every bio had completed before the submitter let go: a positive
   *  count, completed here, and the record freed after the event. */
  private async aioDirectCompletedFirst(call: AioDirectCall, r: DioResult): Promise<void> {
    call.recordOwned = false;
    try {
      call.post(await this.completeBySubmitter(call.op, r, call.offset, call));
    } finally {
      this.freeUnowned(call);
    }
  }

  /** A request that is not queued: the submitter waits for its bios, completes it, syncs for a
   *  dsync write, and posts the event; a write cut by a hole writes the rest buffered. */
  private async aioDirectBySubmitter(call: AioDirectCall, dio: DioInFlight): Promise<void> {
    dio.drop();
    let res: number;
    try {
      const r = call.bySubmitter ?? (await new Promise<DioResult>((resolve) => { call.submitterDone = resolve; }));
      res = this.endIoSubmitter(call.op, r, call.offset);
      if (call.op === "write" && dio.holeAt && res >= 0 && res < call.total) {
        res = await this.writeRestBuffered(call.buffers, call.offset, res, call.syscall);
      }
    } finally {
      call.unlock();
    }
    this.freeUnowned(call);
    call.post(await this.callerSync(res, call.offset, call.dsync, call.datasync, false, call.syscall));
  }

  /** @internal Test hook: awaited after a queued request's bios are submitted, before the
   *  submitter drops its reference (so that every bio may complete first: assertion 28). */
  beforeSubmitterDrop: (() => Promise<void>) | undefined;

  /** Whether a write is dsync (spec 6.1): O_DSYNC (O_SYNC includes it), RWF_DSYNC / RWF_SYNC, or
   *  an IS_SYNC inode. */
  private isDsync(rwFlags: number): boolean {
    return (this.flags & O_DSYNC) !== 0 || (rwFlags & (RWF_DSYNC | RWF_SYNC)) !== 0 || this.fs.isSyncInode(this.inode);
  }
  /** A full sync (O_SYNC, RWF_SYNC) rather than a data sync. */
  private isFullSync(rwFlags: number): boolean {
    return (this.flags & __O_SYNC) !== 0 || (rwFlags & RWF_SYNC) !== 0;
  }

  /**
   * The filesystem's end_io: at the completion of a direct write that set up data, cached pages
   * over the range go (they may have been read in while the IO was in flight) and the times move.
   * (i_size is published by the synchronous path: an extending write never completes here.)
   */
  private endIo(op: "read" | "write", r: DioResult, offset: number): void {
    if (op !== "write" || r.result === 0) return;
    const fs = this.fs;
    const inode = this.inode;
    fs.invalidateRange(inode, offset, r.result);
    if (r.ret > 0) {
      fs.stampTimes(inode);
      fs.touchTimes(inode);
    }
    fs.dioStep("end_io", inode, offset, r.ret);
  }

  /** dio_complete() with is_async false, for the submitter: end_io, then i_dio_count down. */
  private endIoSubmitter(op: "read" | "write", r: DioResult, offset: number): number {
    this.endIo(op, r, offset);
    this.inode.dioEnd();
    this.fs.dioStep("dio_end", this.inode, offset, r.ret);
    return r.ret;
  }

  private async completeBySubmitter(
    op: "read" | "write", r: DioResult, offset: number, o: { dsync: boolean; datasync: boolean; syscall: string },
  ): Promise<number> {
    const res = this.endIoSubmitter(op, r, offset);
    return this.callerSync(res, offset, o.dsync, o.datasync, r.fua, o.syscall);
  }

  /**
   * The caller's generic_write_sync() after a direct write returned a positive count (spec 6.1;
   * assertion 38): its error replaces the count. Nothing when the write was not dsync, set up
   * nothing (assertion 35), or went out write-through (iomap FUA, spec 6.3).
   */
  private async callerSync(res: number, offset: number, dsync: boolean, datasync: boolean, fua: boolean, syscall: string): Promise<number> {
    if (!dsync || res <= 0 || fua) return res;
    const err = await this.fs.syncRange(this.inode, offset, res, datasync, syscall, undefined, true);
    return err < 0 ? err : res;
  }

  /**
   * The asynchronous completion of a queued request (the last bio's completion dropped the last
   * reference), in the order of the filesystem's semantics:
   * - legacy (3.7): fs end_io, the event, then i_dio_count down. No sync (the caller's went out at
   *   submission).
   * - seed: the fs end_io receives the sync-work record in place of its cookie and finishes through
   *   generic_dio_end_io(): with a record, the work goes on the "dio-sync" queue, whose worker runs
   *   generic_write_sync() over the range, lets a sync error replace a positive count, posts the
   *   event, then drops i_dio_count; without one, the event, then i_dio_count down.
   * - merged (3.11+): a dsync write defers to the "dio/<sb>" queue: fs end_io, i_dio_count down,
   *   generic_write_sync(), the event. Anything else completes the same way inline, without sync.
   * - iomap (6.x): as merged, except that a write-through dio (all FUA) needs no sync and completes
   *   inline, and a write on a file with cached pages is deferred (4.14 on).
   */
  /** @internal */
  completeQueued(
    op: "read" | "write", r: DioResult, offset: number,
    o: { dsync: boolean; datasync: boolean; work: SyncWork | null; syscall: string; post: (res: number) => void },
  ): void {
    const fs = this.fs;
    const inode = this.inode;
    const sem = fs.semantics;
    if (sem === "legacy" || (sem === "seed" && r.result !== 0 && o.work === null)) {
      // Legacy, and the seed without a sync-work record (its fs end_io, then generic_dio_end_io()
      // with no record, below): fs end_io, the event, then i_dio_count down. (Legacy: no sync,
      // the caller's went out at submission.)
      this.endIo(op, r, offset);
      o.post(r.ret);
      fs.dioStep("event", inode, offset, r.ret);
      inode.dioEnd();
      fs.dioStep("dio_end", inode, offset, r.ret);
      return;
    }
    if (sem !== "seed" && r.result !== 0 && !(o.dsync && !r.fua) && !(sem === "iomap" && op === "write" && fs.pages.hasPages(inode.ino))) {
      // merged / iomap, nothing to defer (the cases below): inline, no sync: end_io, i_dio_count
      // down, the event.
      this.endIo(op, r, offset);
      inode.dioEnd();
      fs.dioStep("dio_end", inode, offset, r.ret);
      o.post(r.ret);
      fs.dioStep("event", inode, offset, r.ret);
      return;
    }
    this.completeQueuedInOrder(op, r, offset, o);
  }

  /** completeQueued() for the cases with a record, a queue or a sync to order (apart, so that
   *  the common completions above allocate no closure context). */
  private completeQueuedInOrder(
    op: "read" | "write", r: DioResult, offset: number,
    o: { dsync: boolean; datasync: boolean; work: SyncWork | null; syscall: string; post: (res: number) => void },
  ): void {
    const fs = this.fs;
    const inode = this.inode;
    const sem = fs.semantics;
    const event = (res: number): void => {
      o.post(res);
      fs.dioStep("event", inode, offset, res);
    };
    const dioEnd = (): void => {
      inode.dioEnd();
      fs.dioStep("dio_end", inode, offset, r.ret);
    };
    switch (sem) {
      case "seed":
        // dio_complete(): a filesystem with its own end_io gets the record in place of its
        // private cookie when IO was set up, and must finish through generic_dio_end_io();
        // otherwise the generic path frees the record (no IO: no sync) and calls it directly.
        if (r.result !== 0) {
          this.seedFsEndIo(op, r, offset, o.work, o, event, dioEnd);
        } else {
          if (o.work !== null) fs.freeSyncWork(o.work, inode);
          this.genericDioEndIo(null, r.ret, r.result, offset, true, o, event, dioEnd);
        }
        return;
      case "merged":
      case "iomap": {
        const needSync = o.dsync && !r.fua;
        // 4.14 on: a write to a file with pages in the cache (read in while it was in flight)
        // defers, so that the invalidation runs in process context; decided at completion.
        const cachedPages = fs.semantics === "iomap" && op === "write" && fs.pages.hasPages(inode.ino);
        const defer = r.result !== 0 && (needSync || cachedPages);
        let endIoDone = false;
        const complete = async (inWorker: boolean): Promise<void> => {
          if (!endIoDone) {
            this.endIo(op, r, offset);
            dioEnd();
          }
          let res = r.ret;
          if (inWorker && needSync) {
            fs.dioStep("sync_start", inode, offset, res);
            // generic_write_sync(file, offset, transferred): the bytes set up, even after an IO error.
            const err = await fs.syncRange(inode, offset, r.result, o.datasync, o.syscall, fs.dioQueue ?? undefined);
            fs.dioStep("sync_end", inode, offset, err);
            if (err < 0 && res > 0) res = err;
          }
          event(res);
        };
        const queue = fs.dioQueue;
        if (defer && queue !== null) {
          fs.dioStats.workQueued++;
          fs.dioStep("work_queued", inode, offset, r.ret);
          if (queue.executor === "worker" && needSync) {
            // On the worker executor the item's first steps (end_io, i_dio_count--) run here, so
            // that what its sync needs is known: when that is only a cache flush, the queue's
            // thread runs it (queueFlush), and one flush serves every item waiting for it.
            this.endIo(op, r, offset);
            dioEnd();
            endIoDone = true;
            if (fs.syncIsFlushOnly(inode, offset, r.result, o.datasync)) {
              queue.queueFlush((status) => {
                fs.dioStats.syncs++;
                fs.dioStep("sync_start", inode, offset, r.ret);
                fs.dioStep("sync_end", inode, offset, status);
                event(status < 0 && r.ret > 0 ? status : r.ret);
              });
              return;
            }
          }
          queue.queue(() => complete(true));
        } else if (!defer) {
          // Inline, no sync: end_io, i_dio_count down, the event.
          this.endIo(op, r, offset);
          dioEnd();
          event(r.ret);
        } else {
          // A sync that could not be deferred (no queue: the filesystem is going away) still
          // runs inline, never skipped.
          void complete(true);
        }
        return;
      }
    }
  }

  /** Our filesystem's end_io under the seed: its own completion work (endIo), then the cookie it
   *  was handed, here the sync-work record, goes on to generic_dio_end_io(). */
  private seedFsEndIo(
    op: "read" | "write", r: DioResult, offset: number, cookie: SyncWork | null,
    o: { datasync: boolean; syscall: string }, event: (res: number) => void, dioEnd: () => void,
  ): void {
    this.endIo(op, r, offset);
    this.genericDioEndIo(cookie, r.ret, r.result, offset, true, o, event, dioEnd);
  }

  /** The seed's generic_dio_end_io() (spec 3.3). */
  private genericDioEndIo(
    work: SyncWork | null, ret: number, bytes: number, offset: number, isAsync: boolean,
    o: { datasync: boolean; syscall: string }, event: (res: number) => void, dioEnd: () => void,
  ): void {
    const fs = this.fs;
    const inode = this.inode;
    if (!isAsync) {
      dioEnd();
      return;
    }
    if (work === null) {
      event(ret);
      dioEnd();
      return;
    }
    work.ret = ret;
    work.offset = offset;
    work.len = bytes;
    const record = work;
    const queue = fs.dioQueue;
    const run = async (): Promise<void> => {
      fs.dioStep("sync_start", inode, record.offset, record.ret);
      const err = await fs.syncRange(inode, record.offset, record.len, o.datasync, o.syscall, queue ?? undefined);
      fs.dioStep("sync_end", inode, record.offset, err);
      if (err < 0 && record.ret > 0) record.ret = err;
      event(record.ret);
      dioEnd();
      fs.freeSyncWork(record, inode);
    };
    if (queue === null) {
      // No queue (the filesystem is going away): the sync still runs, never skipped.
      void run();
      return;
    }
    fs.dioStats.workQueued++;
    fs.dioStep("work_queued", inode, offset, ret);
    if (queue.executor === "worker" && fs.syncIsFlushOnly(inode, record.offset, record.len, o.datasync)) {
      // The whole sync is a cache flush: the queue's thread runs it (queueFlush), in order, one
      // flush per item. (The inline executor runs the same item through generic_write_sync.)
      queue.queueFlush((status) => {
        fs.dioStats.syncs++;
        fs.dioStep("sync_start", inode, record.offset, record.ret);
        fs.dioStep("sync_end", inode, record.offset, status);
        if (status < 0 && record.ret > 0) record.ret = status;
        event(record.ret);
        dioEnd();
        fs.freeSyncWork(record, inode);
      });
      return;
    }
    queue.queue(run);
  }

  /**
   * The hole fallback (spec 2.8, 3.x __generic_file_aio_write): what the direct part did not write
   * (`buffers` past their first `done` bytes) goes through the page cache at `from + done`, is
   * written back and invalidated. Returns the call's count: all of it, or, if the buffered part
   * fails, what the direct part wrote (an error only when that was nothing). Inode lock held.
   */
  private async writeRestBuffered(buffers: Uint8Array[], from: number, done: number, syscall: string): Promise<number> {
    const fs = this.fs;
    const total = buffers.reduce((sum, b) => sum + b.length, 0);
    const rest = new Uint8Array(total - done);
    let at = 0;
    let skip = done;
    for (const b of buffers) {
      const part = b.subarray(Math.min(skip, b.length));
      skip -= Math.min(skip, b.length);
      rest.set(part, at);
      at += part.length;
    }
    try {
      const copied = await this.writeLocked(rest, from + done, syscall);
      await fs.writebackInode(this.inode, syscall);
      fs.invalidateRange(this.inode, from + done, copied);
      return done + copied;
    } catch (error) {
      if (done === 0) throw error;
      return done;
    }
  }

  private errnoError(errno: number, syscall: string): DioError {
    return DioError.fromErrno(errno, syscall, errno === -5 ? "a bio of the direct IO failed" : `direct IO failed with errno ${-errno}`);
  }

  async sync(): Promise<void> {
    this.checkOpen("fsync");
    await this.recordSync("fsync", () => this.fs.syncInode(this.inode, false, "fsync"));
  }

  async datasync(): Promise<void> {
    this.checkOpen("fdatasync");
    await this.recordSync("fdatasync", () => this.fs.syncInode(this.inode, true, "fdatasync"));
  }

  // ---- the durability oracle's view (Filesystem.recorder, set by crashTest) --------------------

  /** @internal Records a write about to start (null when nothing records). Its place is `at`
   *  unless O_APPEND or the file position decides it under the inode lock (place() then). Call the
   *  result with the count written and whether its acknowledgement promises durability. */
  /** @internal Whether a durability recorder watches this file's writes (recordWrite() would
   *  return a record). */
  get recorded(): boolean {
    return this.fs?.recorder !== undefined && this.inode?.name !== null && this.inode?.name !== undefined;
  }

  recordWrite(at: number | null, buffers: readonly Uint8Array[], how: string): WriteDone | null {
    const recorder = this.fs.recorder;
    const name = this.inode?.name;
    if (recorder === undefined || name === null || name === undefined) return null;
    return recorder.writeStart(name, (this.flags & O_APPEND) !== 0 ? null : at, buffers, how);
  }

  /** @internal Runs a sync of this file, recorded for the oracle. */
  async recordSync(how: string, sync: () => Promise<void>): Promise<void> {
    const recorder = this.fs.recorder;
    const name = this.inode?.name;
    const done = recorder !== undefined && name !== null && name !== undefined ? recorder.syncStart(name, how) : undefined;
    await sync();
    done?.(true);
  }

  /** @internal Whether a write with these per-call flags is dsync (its ack promises durability). */
  writesDsync(rwFlags: number): boolean {
    return this.isDsync(rwFlags);
  }

  async truncate(len = 0): Promise<void> {
    this.checkTruncate(len);
    await this.fs.truncateInode(this.inode, len, "ftruncate");
  }

  /**
   * ftruncate(2) as a synchronous call: the same as truncate() where it needs no IO and no wait
   * (shrinking to a multiple of the page size, growing a file whose size is a multiple of the fs
   * block), EAGAIN before anything changes otherwise (a new size inside a page, the inode lock or
   * direct IO of a promise call in flight). On any handle open for writing.
   */
  truncateSync(len = 0): void {
    this.checkTruncate(len);
    this.fs.truncateInodeNow(this.inode, len, "ftruncate");
  }

  private checkTruncate(len: number): void {
    if (typeof len !== "number" || !Number.isInteger(len) || len < 0) throw fail("EINVAL", "ftruncate", `length ${String(len)} must be a non-negative integer`);
    this.checkOpen("ftruncate");
    if ((this.flags & O_ACCMODE) === O_RDONLY) throw fail("EINVAL", "ftruncate", `file descriptor ${this.fd} is not open for writing`);
  }

  async stat(): Promise<Stats> {
    return this.statSync();
  }

  /** fstat(2) as a synchronous call (it needs no IO). */
  statSync(): Stats {
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

/**
 * One AIO request on an O_DIRECT file while it is set up and in flight: what its completion needs
 * (struct dio's iocb side and the submitter's wait), one object rather than a closure per field.
 */
class AioDirectCall {
  /** The result, when the submitter's drop completed the dio (dio_complete with is_async false). */
  bySubmitter: DioResult | undefined;
  /** Wakes the submitter waiting for a request that is not queued. */
  submitterDone: ((r: DioResult) => void) | undefined;
  /** -EIOCBQUEUED: the last bio's completion completes the request. */
  queued = false;
  /** The sync-work record belongs to the queued completion (not freed by the submitter). */
  recordOwned = false;
  /** Bounce buffers, when some of the caller's are outside the arena. */
  segments: { segments: DioSegment[]; release(): void } | null = null;
  /** The inode lock while the request holds it: the mutex itself when taken with tryAcquire(),
   *  or the releaser lock() resolved with. */
  held: Mutex | (() => void) | null = null;

  constructor(
    private readonly fh: FileHandle,
    readonly op: "read" | "write",
    readonly buffers: Uint8Array[],
    readonly offset: number,
    readonly total: number,
    readonly dsync: boolean,
    readonly datasync: boolean,
    public work: SyncWork | null,
    readonly syscall: string,
    readonly post: (res: number) => void,
  ) {}

  /** Queued when async, set up whole (a read: anything), with no submission error (spec 2.12). */
  isQueued(dio: DioInFlight): boolean {
    return dio.submitError === 0 && dio.result > 0 && (this.op === "read" || dio.result === this.total);
  }

  /** Lets go of the inode lock, if the request still holds it. */
  unlock(): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    if (typeof held === "function") held();
    else held.release();
  }

  /** dio_complete(): the last reference dropped (`fromBio`: by a bio's completion). */
  dioComplete(r: DioResult, fromBio: boolean): void {
    const bounced = this.segments;
    if (bounced !== null) {
      if (this.op === "read") {
        // The bounce buffers go back to the caller's (what was set up, holes zero-filled).
        let left = r.result;
        for (const seg of bounced.segments) {
          const take = Math.min(left, seg.user.length);
          if (take > 0 && seg.bounce !== undefined) seg.user.set(seg.bounce.subarray(0, take));
          left -= take;
        }
      }
      bounced.release();
    }
    // A request that is not queued is waited for by its submitter, which then drops its
    // reference last (dio_await_completion): the submitter completes it.
    if (!fromBio || !this.queued) {
      this.bySubmitter = r;
      this.submitterDone?.(r);
      return;
    }
    this.fh.completeQueued(this.op, r, this.offset, this);
  }
}
