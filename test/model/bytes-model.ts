// A plain byte-array model of regular files and of a raw block device, as POSIX and Linux present
// them to pread/pwrite(2), preadv/pwritev(2) and ftruncate(2), plus the O_DIRECT alignment rule of
// the legacy direct-IO path. Written from the man pages and the direct-IO specification
// (/work/shared/spec/dio-semantics.md 2.1, 2.8, 2.14), not from host/, so that it can serve as an
// independent oracle for test/dio.test.ts.
//
// What it says:
// - A file is its bytes [0, size). Bytes never written (holes, the gap an extending write or an
//   extending truncate leaves) read as zeros. How the IO is done (direct, buffered, hole fallback,
//   sub-block zeroing) does not show: every successful write of n bytes returns n and puts exactly
//   those bytes at its position.
// - A read returns min(length, size - position) bytes (0 at or past EOF).
// - A block device is a fixed-size array of bytes. Reads at or past the end return 0, reads across
//   it are short; writes at or past the end fail with ENOSPC, writes across it are short.
// - O_DIRECT: the offset, every buffer address and every length must be a multiple of the fs block
//   (for the device, the logical block), or failing that of the disk's logical block size;
//   otherwise EINVAL before anything happens.

/** An errno the model says a call fails with. */
export class ModelError extends Error {
  constructor(readonly code: string, message: string, readonly value?: number, readonly alignment?: number) {
    super(`${code}: ${message}`);
  }
}

/** One user buffer of a (possibly vectored) direct call, by its address and length. */
export interface ModelSegment {
  address: number;
  length: number;
}

/**
 * The O_DIRECT alignment rule (spec 2.1): the dio block is the fs block when the offset, every
 * address and every length are multiples of it; otherwise the logical block when they all are
 * multiples of that; otherwise EINVAL, naming the first misaligned value (the offset first, then
 * each segment's address and length, in order, as 3.x checks them) and the logical block size.
 * Returns the dio block size.
 */
export function directAlignment(position: number, segments: ModelSegment[], fsBlock: number, logicalBlock: number): number {
  const values: { what: string; value: number }[] = [{ what: "offset", value: position }];
  for (const s of segments) {
    values.push({ what: "buffer address", value: s.address });
    values.push({ what: "length", value: s.length });
  }
  if (values.every((v) => v.value % fsBlock === 0)) return fsBlock;
  const bad = values.find((v) => v.value % logicalBlock !== 0);
  if (bad === undefined) return logicalBlock;
  throw new ModelError("EINVAL", `${bad.what} ${bad.value} is not a multiple of the ${logicalBlock}-byte logical block size`, bad.value, logicalBlock);
}

/** Total length of a list of buffers. */
export function totalLength(buffers: readonly { byteLength: number }[]): number {
  return buffers.reduce((sum, b) => sum + b.byteLength, 0);
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(totalLength(parts));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** A regular file: size and bytes. Holes are not represented; they are zeros. */
export class ByteFile {
  private data = new Uint8Array(0);
  size = 0;
  /**
   * Block indices (of `blockSize` bytes) that some write has put data in since the last truncate
   * that cut them away. Not part of what a file shows; the random test uses it only to aim writes
   * and reads at holes.
   */
  readonly written = new Set<number>();

  constructor(readonly blockSize: number) {}

  private ensure(capacity: number): void {
    if (capacity <= this.data.length) return;
    let next = Math.max(4096, this.data.length);
    while (next < capacity) next *= 2;
    const grown = new Uint8Array(next);
    grown.set(this.data.subarray(0, this.size));
    this.data = grown;
  }

  /** pwrite: puts the bytes at `position`, extending the file; returns the count written. */
  write(position: number, bytes: Uint8Array): number {
    if (position < 0) throw new ModelError("EINVAL", `position ${position} is negative`, position);
    if (bytes.length === 0) return 0;
    const end = position + bytes.length;
    this.ensure(end);
    if (position > this.size) this.data.fill(0, this.size, position);
    this.data.set(bytes, position);
    if (end > this.size) this.size = end;
    const first = Math.floor(position / this.blockSize);
    const last = Math.floor((end - 1) / this.blockSize);
    for (let b = first; b <= last; b++) this.written.add(b);
    return bytes.length;
  }

  /** pread: the bytes [position, min(position + length, size)). */
  read(position: number, length: number): Uint8Array {
    if (position < 0) throw new ModelError("EINVAL", `position ${position} is negative`, position);
    if (position >= this.size || length <= 0) return new Uint8Array(0);
    const count = Math.min(length, this.size - position);
    return this.data.slice(position, position + count);
  }

  /** ftruncate: cuts the file, or extends it with zeros. */
  truncate(length: number): void {
    if (length < 0) throw new ModelError("EINVAL", `length ${length} is negative`, length);
    if (length > this.size) {
      this.ensure(length);
      this.data.fill(0, this.size, length);
    } else {
      this.data.fill(0, length, this.size);
    }
    this.size = length;
    const keep = Math.ceil(length / this.blockSize);
    for (const b of [...this.written]) if (b >= keep) this.written.delete(b);
  }

  /** The whole file. */
  contents(): Uint8Array {
    return this.data.slice(0, this.size);
  }

  /** Whether file block `index` (inside i_size) has never been written since it was cut away: a hole. */
  isHole(index: number): boolean {
    return index * this.blockSize < this.size && !this.written.has(index);
  }
}

/** A raw block device of a fixed size. */
export class ByteDevice {
  readonly data: Uint8Array;

  constructor(readonly size: number, initial?: Uint8Array) {
    this.data = new Uint8Array(size);
    if (initial !== undefined) this.data.set(initial.subarray(0, size));
  }

  /** pread: short at the end, empty at or past it. */
  read(position: number, length: number): Uint8Array {
    if (position < 0) throw new ModelError("EINVAL", `position ${position} is negative`, position);
    if (position >= this.size || length <= 0) return new Uint8Array(0);
    return this.data.slice(position, Math.min(this.size, position + length));
  }

  /** pwrite: ENOSPC at or past the end, short across it; returns the count written. */
  write(position: number, bytes: Uint8Array): number {
    if (position < 0) throw new ModelError("EINVAL", `position ${position} is negative`, position);
    if (bytes.length === 0) return 0;
    if (position >= this.size) throw new ModelError("ENOSPC", `position ${position} is at or past the end of the ${this.size}-byte device`, position);
    const count = Math.min(bytes.length, this.size - position);
    this.data.set(bytes.subarray(0, count), position);
    return count;
  }
}
