// The package root: everything users import from "dioemu".
export * from "./constants.js";
export { DioError, ERRNO, errnoName } from "./errors.js";
export { Disk, type DiskOptions, type DiskStats, type QueueLimits } from "./disk.js";
export { formatBlkparse, formatRecord, type Trace, type TraceRecord } from "./trace.js";
export { validateLimits } from "./limits.js";
export { mkfs, mount, Filesystem, type Semantics, type Stats, type MkfsOptions, type MountOptions } from "./fs/filesystem.js";
export { FileHandle } from "./fs/filehandle.js";
export type { FaultRule } from "./device.js";
export { BlockDeviceHandle } from "./bdev.js";
export { ioSetup, AioContext, type Iocb, type IoEvent } from "./aio.js";
export { crashTest, type CrashTestOptions, type CrashTestContext, type CrashReport, type CrashViolation, type CrashWorkloadError } from "./crash/crashtest.js";
export { WORKLOADS, workloadNamed, type Workload } from "./crash/workloads.js";
export { DurabilityOracle, type DurabilityViolation, type RecordedWrite } from "./crash/oracle.js";
