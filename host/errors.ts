// Operating errors: Linux errno values, turned into DioError (or an event's res) in one place.

/** errno numbers, Linux x86-64. */
export const ERRNO = {
  EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EFAULT: 14, EBUSY: 16,
  EEXIST: 17, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, EFBIG: 27, ENOSPC: 28, EDEADLK: 35, ENAMETOOLONG: 36,
  ENOTSUP: 95, EUCLEAN: 117,
} as const;
export type ErrnoName = keyof typeof ERRNO;

const NAMES = new Map<number, ErrnoName>(
  (Object.entries(ERRNO) as [ErrnoName, number][]).map(([name, value]) => [value, name]),
);

/** The errno name of a negative (or positive) errno value, "E<n>" when unknown. */
export function errnoName(errno: number): string {
  return NAMES.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** A rejected call, shaped like Node's system errors: code "EINVAL", errno -22, syscall. */
export class DioError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(code: ErrnoName, syscall: string, message: string) {
    super(`${code}: ${message}, ${syscall}`);
    this.name = "DioError";
    this.code = code;
    this.errno = -ERRNO[code];
    this.syscall = syscall;
  }
  /** The DioError for a negative errno returned by the core or the device. */
  static fromErrno(errno: number, syscall: string, message: string): DioError {
    const name = NAMES.get(Math.abs(errno)) ?? "EIO";
    return new DioError(name, syscall, message);
  }
}
