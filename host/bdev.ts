// The whole disk as a file (/dev/sdX): Disk.openBlockDevice(). With O_DIRECT, IO goes through the
// direct-IO engine with the device's own identity mapping (blkdev_get_block: every block maps to
// itself, never a hole, never new), aligned to the logical block. Without O_DIRECT it goes to the
// device through a bounce buffer, read-modify-write at logical-block granularity: the emulator has
// no block-device page cache, so such writes reach the device's volatile cache when they return.
// see: block/fops.c (blkdev_read_iter, blkdev_write_iter, blkdev_fsync), fs/block_dev.c (3.x).
import type { Disk } from "./disk.js";
import { DioError, type ErrnoName } from "./errors.js";
import { O_ACCMODE, O_APPEND, O_DIRECT, O_DSYNC, O_RDONLY, O_WRONLY, SECTOR_BYTES } from "./constants.js";
import { dioBlockBits, dioRun, dioRunPolled, type DioRun, type DioTarget } from "./dio.js";
import { Mutex } from "./fs/mutex.js";

/** Buffered IO on the raw device reads, modifies and writes whole logical blocks: one at a time
 *  per disk, so that two writes into one block cannot lose each other's bytes. */
const rmwLocks = new WeakMap<Disk, Mutex>();
function rmwLock(disk: Disk): Mutex {
  let lock = rmwLocks.get(disk);
  if (lock === undefined) {
    lock = new Mutex();
    rmwLocks.set(disk, lock);
  }
  return lock;
}
import { bufferRange, checkBuffers, checkPosition } from "./args.js";
import { FileHandle } from "./fs/filehandle.js";
import type { Filesystem, Inode } from "./fs/filesystem.js";
import type { Stats } from "./fs/filesystem.js";
import type { Semantics } from "./fs/filesystem.js";


function fail(code: ErrnoName, syscall: string, message: string): DioError {
  return new DioError(code, syscall, message);
}

const POLLED = Object.freeze({ polled: true });
const NO_STEP = (): void => undefined;

/** A direct read's count, or its error thrown. */
function readDone(run: DioRun, syscall: string): number {
  if (run.error !== 0) throw DioError.fromErrno(run.error, syscall, "a bio of the read failed");
  return run.done;
}

/** A direct write's count (what earlier passes wrote, when a later one failed), or its error
 *  thrown when nothing was written. */
function writeDone(run: DioRun, syscall: string): number {
  if (run.error !== 0 && run.done === 0) throw DioError.fromErrno(run.error, syscall, "a bio of the write failed");
  return run.done;
}

/** An open block device: a FileHandle (API.md) over the whole disk. */
export class BlockDeviceHandle extends FileHandle {
  private devPosition = 0;
  private devClosed = false;
  private readonly crashCountAtOpen: number;

  /** @internal Use Disk.openBlockDevice(). */
  constructor(private readonly disk: Disk, flags: number, private readonly semantics: Semantics = "seed") {
    super(null as unknown as Filesystem, null as unknown as Inode, flags);
    this.crashCountAtOpen = disk.crashCount;
  }

  /** @internal The disk this handle's IO goes to. */
  override ioDisk(): Disk {
    return this.disk;
  }

  /** @internal Whether close() has run. */
  override get isClosed(): boolean {
    return this.devClosed;
  }

  private devCheckOpen(syscall: string): void {
    if (this.devClosed) throw fail("EBADF", syscall, `file descriptor ${this.fd} is closed`);
    if (this.disk.isClosed) throw fail("EIO", syscall, "the disk is closed");
    if (this.disk.crashCount !== this.crashCountAtOpen) throw fail("EIO", syscall, "the disk lost power since this handle was opened");
  }

  private target(): DioTarget {
    return {
      disk: this.disk, ino: 0, fsBits: Math.log2(this.disk.limits.logicalBlockSize), semantics: this.semantics,
      size: () => this.disk.size, skipHoles: false, allocated: () => undefined, reclaim: async () => false, reclaimPolled: () => false, mayReclaim: () => false,
      extended: () => undefined,
      alive: (syscall) => this.devCheckOpen(syscall),
      metadataDirty: () => false,
    };
  }

  override async read(buffer: Uint8Array, offset?: number, length?: number, position?: number | null): Promise<{ bytesRead: number; buffer: Uint8Array }> {
    const syscall = position === null || position === undefined ? "read" : "pread64";
    const data = bufferRange(buffer, offset, length, syscall);
    const at = checkPosition(position, syscall);
    this.devCheckOpen(syscall);
    if ((this.flags & O_ACCMODE) === O_WRONLY) throw fail("EBADF", syscall, `file descriptor ${this.fd} is not open for reading (O_WRONLY)`);
    const from = at ?? this.devPosition;
    const bytesRead = await this.devReadAt([data], from, syscall);
    if (at === null) this.devPosition = from + bytesRead;
    return { bytesRead, buffer };
  }

  override async readv(buffers: Uint8Array[], position?: number | null): Promise<{ bytesRead: number; buffers: Uint8Array[] }> {
    const syscall = position === null || position === undefined ? "readv" : "preadv";
    checkBuffers(buffers, syscall);
    const at = checkPosition(position, syscall);
    this.devCheckOpen(syscall);
    if ((this.flags & O_ACCMODE) === O_WRONLY) throw fail("EBADF", syscall, `file descriptor ${this.fd} is not open for reading (O_WRONLY)`);
    const from = at ?? this.devPosition;
    const bytesRead = await this.devReadAt(buffers, from, syscall);
    if (at === null) this.devPosition = from + bytesRead;
    return { bytesRead, buffers };
  }

  override async write(buffer: Uint8Array, offset?: number, length?: number, position?: number | null): Promise<{ bytesWritten: number; buffer: Uint8Array }> {
    const syscall = position === null || position === undefined ? "write" : "pwrite64";
    const data = bufferRange(buffer, offset, length, syscall);
    const at = checkPosition(position, syscall);
    this.devCheckOpen(syscall);
    if ((this.flags & O_ACCMODE) === O_RDONLY) throw fail("EBADF", syscall, `file descriptor ${this.fd} is not open for writing (O_RDONLY)`);
    return { bytesWritten: await this.devWriteAt([data], at, syscall), buffer };
  }

  override async writev(buffers: Uint8Array[], position?: number | null): Promise<{ bytesWritten: number; buffers: Uint8Array[] }> {
    const syscall = position === null || position === undefined ? "writev" : "pwritev";
    checkBuffers(buffers, syscall);
    const at = checkPosition(position, syscall);
    this.devCheckOpen(syscall);
    if ((this.flags & O_ACCMODE) === O_RDONLY) throw fail("EBADF", syscall, `file descriptor ${this.fd} is not open for writing (O_RDONLY)`);
    return { bytesWritten: await this.devWriteAt(buffers, at, syscall), buffers };
  }

  /** Limits a request to the device: reads stop at the end, writes there are ENOSPC. */
  private clamp(buffers: Uint8Array[], from: number, write: boolean, syscall: string): Uint8Array[] {
    const size = this.disk.size;
    if (from >= size) {
      if (write && buffers.some((b) => b.length > 0)) throw fail("ENOSPC", syscall, `position ${from} is at or past the end of the ${size}-byte device`);
      return [];
    }
    let room = size - from;
    return buffers.map((b) => {
      const part = b.subarray(0, Math.min(b.length, room));
      room -= part.length;
      return part;
    });
  }

  /** A direct request's engine view: the target, its alignment (EINVAL first), and the buffers
   *  limited to the device (null when nothing is left to transfer). */
  private directCall(buffers: Uint8Array[], from: number, write: boolean, syscall: string): { target: DioTarget; dioBits: number; clamped: Uint8Array[] } | null {
    const target = this.target();
    const dioBits = dioBlockBits(target, buffers, from, syscall);
    const clamped = this.clamp(buffers, from, write, syscall).filter((b) => b.length > 0);
    return clamped.length === 0 ? null : { target, dioBits, clamped };
  }

  private async devReadAt(buffers: Uint8Array[], from: number, syscall: string): Promise<number> {
    if ((this.flags & O_DIRECT) !== 0) {
      const call = this.directCall(buffers, from, false, syscall);
      if (call === null) return 0;
      return readDone(await dioRun(call.target, "read", call.clamped, from, call.dioBits, syscall, () => undefined), syscall);
    }
    const clamped = this.clamp(buffers, from, false, syscall);
    const total = clamped.reduce((sum, b) => sum + b.length, 0);
    if (total === 0) return 0;
    const bytes = await rmwLock(this.disk).run(() => this.transfer(from, total, null));
    let at = 0;
    for (const b of clamped) {
      b.set(bytes.subarray(at, at + b.length));
      at += b.length;
    }
    return total;
  }

  private async devWriteAt(buffers: Uint8Array[], at: number | null, syscall: string): Promise<number> {
    const from = (this.flags & O_APPEND) !== 0 ? this.disk.size : at ?? this.devPosition;
    let written: number;
    if ((this.flags & O_DIRECT) !== 0) {
      const call = this.directCall(buffers, from, true, syscall);
      if (call === null) return 0;
      written = writeDone(await dioRun(call.target, "write", call.clamped, from, call.dioBits, syscall, () => undefined), syscall);
    } else {
      const clamped = this.clamp(buffers, from, true, syscall);
      const total = clamped.reduce((sum, b) => sum + b.length, 0);
      if (total === 0) return 0;
      const joined = new Uint8Array(total);
      let off = 0;
      for (const b of clamped) {
        joined.set(b, off);
        off += b.length;
      }
      await rmwLock(this.disk).run(() => this.transfer(from, total, joined));
      written = total;
    }
    if (at === null) this.devPosition = from + written;
    // blkdev_write_iter(): generic_write_sync() for O_SYNC/O_DSYNC, a cache flush for the device.
    if ((this.flags & O_DSYNC) !== 0 && written > 0) await this.flush(syscall);
    return written;
  }

  /** readSync()/readvSync() on the device: O_DIRECT only, polled (FileHandle.readSync()). */
  protected override readPolled(buffers: Uint8Array[], at: number | null, syscall: string): number {
    this.devCheckOpen(syscall);
    if ((this.flags & O_ACCMODE) === O_WRONLY) throw fail("EBADF", syscall, `file descriptor ${this.fd} is not open for reading (O_WRONLY)`);
    this.checkPolled(syscall);
    const from = at ?? this.devPosition;
    const call = this.directCall(buffers, from, false, syscall);
    const bytesRead = call === null ? 0 : readDone(dioRunPolled(call.target, "read", call.clamped, from, call.dioBits, syscall, NO_STEP, POLLED), syscall);
    if (at === null) this.devPosition = from + bytesRead;
    return bytesRead;
  }

  /** writeSync()/writevSync() on the device: O_DIRECT only, polled, with the O_DSYNC flush. */
  protected override writePolled(buffers: Uint8Array[], at: number | null, syscall: string): number {
    this.devCheckOpen(syscall);
    if ((this.flags & O_ACCMODE) === O_RDONLY) throw fail("EBADF", syscall, `file descriptor ${this.fd} is not open for writing (O_RDONLY)`);
    this.checkPolled(syscall);
    const from = (this.flags & O_APPEND) !== 0 ? this.disk.size : at ?? this.devPosition;
    const call = this.directCall(buffers, from, true, syscall);
    if (call === null) return 0;
    const written = writeDone(dioRunPolled(call.target, "write", call.clamped, from, call.dioBits, syscall, NO_STEP, POLLED), syscall);
    if (at === null) this.devPosition = from + written;
    if ((this.flags & O_DSYNC) !== 0 && written > 0) this.flushPolled(syscall);
    return written;
  }

  private flushPolled(syscall: string): void {
    this.disk.device.checkPollable(syscall);
    const status = this.disk.queue.submitBioPolled({ op: "flush", sector: 0, segments: [] }, syscall);
    if (status !== 0) throw DioError.fromErrno(status, syscall, "the cache flush failed");
  }

  /** fsync(2) on the device as a synchronous call: a cache flush, polled. */
  override syncSync(): void {
    this.devCheckOpen("fsync");
    this.flushPolled("fsync");
  }

  override datasyncSync(): void {
    this.devCheckOpen("fdatasync");
    this.flushPolled("fdatasync");
  }

  /** Reads (data null) or writes `length` bytes at `from`, whole logical blocks through a bounce. */
  private async transfer(from: number, length: number, data: Uint8Array | null): Promise<Uint8Array> {
    const lbs = this.disk.limits.logicalBlockSize;
    const start = Math.floor(from / lbs) * lbs;
    const end = Math.ceil((from + length) / lbs) * lbs;
    const bounce = this.disk.alloc(end - start);
    try {
      const sector = start / SECTOR_BYTES;
      for (let at = 0; at < bounce.length; at += 1 << 20) {
        const part = bounce.subarray(at, Math.min(bounce.length, at + (1 << 20)));
        if (data === null || start !== from || end !== from + length) {
          const status = await this.disk.queue.submitBioWait({ op: "read", sector: sector + at / SECTOR_BYTES, segments: [{ buf: part }] });
          if (status !== 0) throw DioError.fromErrno(status, data === null ? "read" : "write", `reading sectors at ${sector + at / SECTOR_BYTES} failed`);
        }
      }
      if (data === null) return bounce.slice(from - start, from - start + length);
      bounce.set(data, from - start);
      for (let at = 0; at < bounce.length; at += 1 << 20) {
        const part = bounce.subarray(at, Math.min(bounce.length, at + (1 << 20)));
        const status = await this.disk.queue.submitBioWait({ op: "write", sector: sector + at / SECTOR_BYTES, segments: [{ buf: part }] });
        if (status !== 0) throw DioError.fromErrno(status, "write", `writing sectors at ${sector + at / SECTOR_BYTES} failed`);
      }
      return data;
    } finally {
      this.disk.free(bounce);
    }
  }

  private async flush(syscall: string): Promise<void> {
    const status = await this.disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] });
    if (status !== 0) throw DioError.fromErrno(status, syscall, "the cache flush failed");
  }

  /** blkdev_fsync(): nothing is cached above the device, so a cache flush. */
  override async sync(): Promise<void> {
    this.devCheckOpen("fsync");
    await this.flush("fsync");
  }

  override async datasync(): Promise<void> {
    this.devCheckOpen("fdatasync");
    await this.flush("fdatasync");
  }

  /** ftruncate(2) on a block device is EINVAL. */
  override async truncate(len = 0): Promise<void> {
    this.truncateSync(len);
  }

  override truncateSync(len = 0): void {
    this.devCheckOpen("ftruncate");
    throw fail("EINVAL", "ftruncate", `a block device cannot be truncated (length ${String(len)})`);
  }

  override async stat(): Promise<Stats> {
    return this.statSync();
  }

  override statSync(): Stats {
    this.devCheckOpen("fstat");
    return { ino: 0, size: this.disk.size, blocks: 0, blksize: this.disk.limits.logicalBlockSize, mtimeMs: 0, ctimeMs: 0 };
  }

  override async close(): Promise<void> {
    if (this.devClosed) throw fail("EBADF", "close", `file descriptor ${this.fd} is already closed`);
    this.devClosed = true;
  }
}
