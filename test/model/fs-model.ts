// A plain, slow model of a flat-namespace POSIX filesystem as Linux presents it through open(2),
// pread/pwrite(2), ftruncate(2), unlink(2), close(2) and stat(2), written from the man pages and
// Linux's VFS rules, not from host/fs, so that it can serve as an independent oracle.
// see: fs/open.c do_sys_ftruncate(), fs/read_write.c vfs_write(), mm/filemap.c generic_write_checks()

export const O_ACCMODE = 3;
const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
/** NAME_MAX: the longest name, in bytes (UTF-8). */
export const NAME_BYTES_MAX = 255;
const SECTOR_BYTES = 512;

/** An errno the model says a call fails with. */
export class ModelError extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
  }
}

/** A file: its bytes [0, size), and the blocks that hold written data (st_blocks counts them). */
export interface ModelInode {
  readonly id: number;
  data: Uint8Array;
  size: number;
  /** Whether a name points at it; an unlinked inode lives while a handle holds it open. */
  linked: boolean;
  openCount: number;
  /** Indices of file blocks that some write put bytes in and no truncate has cut away since. */
  readonly written: Set<number>;
}

/** An open file description: the access mode, O_APPEND, and the file position. */
export interface ModelHandle {
  readonly inode: ModelInode;
  readonly accessMode: number;
  readonly append: boolean;
  pos: number;
  closed: boolean;
}

export interface ModelStat { size: number; blocks: number }

/** The model of one mounted filesystem: names, inodes, open handles. */
export class FsModel {
  readonly names = new Map<string, ModelInode>();
  /** Every inode that exists: linked ones and unlinked ones still held open. */
  readonly live = new Set<ModelInode>();
  readonly handles = new Set<ModelHandle>();
  /** Blocks released (by truncate or by the last close of an unlinked file) since the last fs.sync():
   *  a filesystem may keep them until its next commit, so they still count against free space. */
  freedBlocksSinceSync = 0;
  private nextId = 1;

  constructor(readonly blockSize: number, readonly inodeCount: number) {}

  /** The name a path refers to, or the errno open(2)/stat(2)/unlink(2) give for it. */
  nameOf(path: string): string {
    const name = path.startsWith("/") ? path.slice(1) : path;
    if (name.length === 0) throw new ModelError("EISDIR", `path "${path}" is the root directory`);
    if (Buffer.byteLength(name, "utf8") > NAME_BYTES_MAX) throw new ModelError("ENAMETOOLONG", `name of ${name.length} bytes`);
    if (name.includes("/")) throw new ModelError("ENOENT", `"${path}": no such directory`);
    return name;
  }

  open(path: string, flags: number): ModelHandle {
    const name = this.nameOf(path);
    let inode = this.names.get(name);
    if (inode !== undefined && (flags & O_CREAT) !== 0 && (flags & O_EXCL) !== 0) {
      throw new ModelError("EEXIST", `"${name}" exists`);
    }
    if (inode === undefined) {
      if ((flags & O_CREAT) === 0) throw new ModelError("ENOENT", `no "${name}"`);
      if (this.live.size >= this.inodeCount) throw new ModelError("ENOSPC", "no free inode");
      inode = { id: this.nextId++, data: new Uint8Array(0), size: 0, linked: true, openCount: 0, written: new Set() };
      this.names.set(name, inode);
      this.live.add(inode);
    } else if ((flags & O_TRUNC) !== 0) {
      // Linux truncates on O_TRUNC whatever the access mode (POSIX leaves O_RDONLY|O_TRUNC open).
      this.setSize(inode, 0);
    }
    inode.openCount++;
    const handle: ModelHandle = { inode, accessMode: flags & O_ACCMODE, append: (flags & O_APPEND) !== 0, pos: 0, closed: false };
    this.handles.add(handle);
    return handle;
  }

  /** pread(2) (position a number) or read(2) (position null: the file position, advanced). */
  read(handle: ModelHandle, length: number, position: number | null): Uint8Array {
    this.checkOpen(handle);
    if (position !== null && position < 0) throw new ModelError("EINVAL", `position ${position}`);
    if (handle.accessMode === O_WRONLY) throw new ModelError("EBADF", "not open for reading");
    const inode = handle.inode;
    const start = position ?? handle.pos;
    const count = Math.max(0, Math.min(length, inode.size - start));
    const out = new Uint8Array(count);
    if (count > 0) out.set(inode.data.subarray(start, start + count));
    if (position === null) handle.pos = start + count;
    return out;
  }

  /** pwrite(2) or write(2). With O_APPEND the bytes go at the end even for pwrite (pwrite(2) BUGS);
   *  pwrite leaves the file position alone. A zero-length write changes nothing. */
  write(handle: ModelHandle, bytes: Uint8Array, position: number | null): number {
    this.checkOpen(handle);
    if (position !== null && position < 0) throw new ModelError("EINVAL", `position ${position}`);
    if (handle.accessMode === O_RDONLY) throw new ModelError("EBADF", "not open for writing");
    if (bytes.length === 0) return 0;
    const inode = handle.inode;
    const start = handle.append ? inode.size : (position ?? handle.pos);
    const end = start + bytes.length;
    this.ensureCapacity(inode, end);
    inode.data.set(bytes, start);
    if (end > inode.size) inode.size = end;
    for (let block = Math.floor(start / this.blockSize); block <= Math.floor((end - 1) / this.blockSize); block++) {
      inode.written.add(block);
    }
    if (position === null) handle.pos = end;
    return bytes.length;
  }

  /** ftruncate(2): Linux checks the length first, then the descriptor, then that it is open for writing. */
  truncate(handle: ModelHandle, length: number): void {
    if (length < 0) throw new ModelError("EINVAL", `length ${length}`);
    this.checkOpen(handle);
    if (handle.accessMode === O_RDONLY) throw new ModelError("EINVAL", "not open for writing");
    this.setSize(handle.inode, length);
  }

  /** fsync(2)/fdatasync(2): no visible change; allowed on any open descriptor. */
  sync(handle: ModelHandle): void {
    this.checkOpen(handle);
  }

  fstat(handle: ModelHandle): ModelStat {
    this.checkOpen(handle);
    return this.statOf(handle.inode);
  }

  close(handle: ModelHandle): void {
    this.checkOpen(handle);
    handle.closed = true;
    this.handles.delete(handle);
    const inode = handle.inode;
    inode.openCount--;
    this.maybeFree(inode);
  }

  unlink(path: string): void {
    const name = this.nameOf(path);
    const inode = this.names.get(name);
    if (inode === undefined) throw new ModelError("ENOENT", `no "${name}"`);
    this.names.delete(name);
    inode.linked = false;
    this.maybeFree(inode);
  }

  stat(path: string): ModelStat {
    const name = this.nameOf(path);
    const inode = this.names.get(name);
    if (inode === undefined) throw new ModelError("ENOENT", `no "${name}"`);
    return this.statOf(inode);
  }

  readdir(): string[] {
    return [...this.names.keys()].sort();
  }

  /** The whole contents of a file, for comparisons. */
  contents(inode: ModelInode): Uint8Array {
    return inode.data.slice(0, inode.size);
  }

  /** What a clean unmount leaves: every handle closed (unlinked files go), every freed block back. */
  closeAllAndSync(): void {
    for (const handle of [...this.handles]) this.close(handle);
    this.freedBlocksSinceSync = 0;
  }

  /** fs.sync(): every release so far has been committed. */
  syncAll(): void {
    this.freedBlocksSinceSync = 0;
  }

  private statOf(inode: ModelInode): ModelStat {
    return { size: inode.size, blocks: inode.written.size * (this.blockSize / SECTOR_BYTES) };
  }

  private checkOpen(handle: ModelHandle): void {
    if (handle.closed) throw new ModelError("EBADF", "handle is closed");
  }

  private setSize(inode: ModelInode, size: number): void {
    if (size < inode.size) {
      inode.data.fill(0, size, inode.size);
      const firstGone = Math.ceil(size / this.blockSize);
      for (const block of [...inode.written]) {
        if (block >= firstGone) {
          inode.written.delete(block);
          this.freedBlocksSinceSync++;
        }
      }
    } else {
      this.ensureCapacity(inode, size);
    }
    inode.size = size;
  }

  private maybeFree(inode: ModelInode): void {
    if (inode.linked || inode.openCount > 0) return;
    this.live.delete(inode);
    this.freedBlocksSinceSync += inode.written.size;
  }

  private ensureCapacity(inode: ModelInode, bytes: number): void {
    if (inode.data.length >= bytes) return;
    const grown = new Uint8Array(Math.max(bytes, inode.data.length * 2, 4096));
    grown.set(inode.data);
    inode.data = grown;
  }
}
