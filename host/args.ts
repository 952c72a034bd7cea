// Argument checks shared by every FileHandle shape (files and the raw device): Node's
// (buffer, offset, length, position) rules, each refusal an EINVAL that names the value.
import { DioError } from "./errors.js";

/** The bytes of `buffer` that (offset, length) select, Node's defaults filled in. */
export function bufferRange(buffer: unknown, offset: unknown, length: unknown, syscall: string): Uint8Array {
  if (!(buffer instanceof Uint8Array)) throw new DioError("EINVAL", syscall, "buffer must be a Uint8Array");
  const start = offset ?? 0;
  if (typeof start !== "number" || !Number.isInteger(start) || start < 0 || start > buffer.length) {
    throw new DioError("EINVAL", syscall, `offset ${String(offset)} must be an integer in 0..${buffer.length}`);
  }
  const count = length ?? buffer.length - start;
  if (typeof count !== "number" || !Number.isInteger(count) || count < 0 || start + count > buffer.length) {
    throw new DioError("EINVAL", syscall, `length ${String(length)} must be a non-negative integer with offset + length <= ${buffer.length}`);
  }
  return start === 0 && count === buffer.length ? buffer : buffer.subarray(start, start + count);
}

/** A file position, or null for "the file position" (null or undefined, as Node). */
export function checkPosition(position: unknown, syscall: string): number | null {
  if (position === null || position === undefined) return null;
  if (typeof position !== "number" || !Number.isInteger(position) || position < 0) {
    throw new DioError("EINVAL", syscall, `position ${String(position)} must be a non-negative integer, or null for the file position`);
  }
  return position;
}

/** IOV_MAX (UIO_MAXIOV): the most buffers one readv/writev takes. */
export const IOV_MAX = 1024;

/** An array of at most IOV_MAX Uint8Array for readv/writev (EINVAL otherwise, as readv(2)). */
export function checkBuffers(buffers: unknown, syscall: string): Uint8Array[] {
  if (!Array.isArray(buffers) || buffers.some((b) => !(b instanceof Uint8Array))) {
    throw new DioError("EINVAL", syscall, "buffers must be an array of Uint8Array");
  }
  if (buffers.length > IOV_MAX) throw new DioError("EINVAL", syscall, `${buffers.length} buffers exceed IOV_MAX (${IOV_MAX})`);
  return buffers as Uint8Array[];
}

let fdCounter = 3;
/** A fresh file descriptor number, unique across files and block devices (0-2 are stdio's). */
export function nextFd(): number {
  return fdCounter++;
}
