// Open flags and per-IO flags with their Linux x86-64 values, so numbers from strace or C headers
// mean the same here.

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_DSYNC = 0o10000;
export const O_DIRECT = 0o40000;
/** O_SYNC includes O_DSYNC, as on Linux (__O_SYNC | O_DSYNC). */
export const O_SYNC = 0o4010000;

export const RWF_DSYNC = 2;
export const RWF_SYNC = 4;

export const SECTOR_SHIFT = 9;
export const SECTOR_BYTES = 512;
export const PAGE_BYTES = 4096;

/** The access-mode bits of open flags. */
export const O_ACCMODE = 3;
/** The bit O_SYNC adds to O_DSYNC: a full sync rather than a data sync. */
export const __O_SYNC = 0o4000000;
