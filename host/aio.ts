// Linux AIO as user space sees it (io_setup, io_submit, io_getevents, io_cancel, io_destroy):
// the context, its ring of events, what io_submit itself refuses, and events posted in completion
// order from the completion path. see: fs/aio.c; spec 7.1.
//
// An O_DIRECT iocb on a file is queued as the kernel queues it (-EIOCBQUEUED: submitted, i_mutex
// released, completed by its last bio or by the filesystem's completion queue, in the order of the
// mount's semantics: FileHandle.aioDirect) or carried out synchronously where the kernel does so
// (an extending write, a hole, a failed submission); other iocbs (buffered files, the raw device)
// run through their FileHandle, with a per-iocb RWF_(D)SYNC sync before the event.
import { DioError } from "./errors.js";
import { O_ACCMODE, O_DIRECT, O_RDONLY, O_WRONLY, RWF_DSYNC, RWF_SYNC } from "./constants.js";
import { FileHandle } from "./fs/filehandle.js";
import { BlockDeviceHandle } from "./bdev.js";
import type { WriteDone } from "./crash/oracle.js";
import type { Disk } from "./disk.js";

/** One request (API.md Iocb). */
export interface Iocb {
  opcode: "pread" | "pwrite" | "preadv" | "pwritev" | "fsync" | "fdsync";
  fh: FileHandle;
  buf?: Uint8Array;
  bufs?: Uint8Array[];
  offset?: number;
  rwFlags?: number;
  data?: unknown;
}

/** One completion (API.md IoEvent): res is the byte count or a negative errno; res2 is 0. */
export interface IoEvent {
  data: unknown;
  obj: Iocb;
  res: number;
  res2: number;
}

const OPCODES = new Set(["pread", "pwrite", "preadv", "pwritev", "fsync", "fdsync"]);
const RW_FLAGS_KNOWN = RWF_DSYNC | RWF_SYNC;
/** The largest context io_setup accepts here (aio-max-nr is 65536 by default). */
export const AIO_EVENTS_MAX = 65536;

/** The longest delay setTimeout takes. */
const TIMER_MS_MAX = 2 ** 31 - 1;

interface Waiter { minNr: number; nr: number; resolve(events: IoEvent[]): void; timer?: ReturnType<typeof setTimeout> }

/** An AIO context (API.md AioContext). */
export class AioContext {
  /** Requests submitted and not yet completed. */
  private inflight = 0;
  /** Completed events not yet reaped, in completion order. */
  private readonly ring: IoEvent[] = [];
  private readonly waiters: Waiter[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private destroyed = false;

  /** @internal Use ioSetup(). */
  constructor(readonly nrEvents: number) {}

  /**
   * io_submit(): starts each iocb in order and returns how many were accepted. Throws only what
   * io_submit itself refuses, for the first iocb; a later refused iocb ends the batch there.
   */
  submit(iocbs: Iocb[]): number {
    if (this.destroyed) throw new DioError("EINVAL", "io_submit", "the AIO context was destroyed");
    if (!Array.isArray(iocbs)) throw new DioError("EINVAL", "io_submit", "iocbs must be an array");
    let accepted = 0;
    for (const iocb of iocbs) {
      try {
        this.check(iocb);
        if (this.inflight + this.ring.length >= this.nrEvents) {
          throw new DioError("EAGAIN", "io_submit", `the context has room for ${this.nrEvents} events, all taken by requests in flight or events not yet reaped`);
        }
      } catch (error) {
        if (accepted === 0) throw error;
        break;
      }
      this.inflight++;
      accepted++;
      void this.run(iocb);
    }
    return accepted;
  }

  /** What io_submit refuses before anything starts. */
  private check(iocb: Iocb): void {
    if (iocb === null || typeof iocb !== "object") throw new DioError("EINVAL", "io_submit", "an iocb must be an object");
    if (!OPCODES.has(iocb.opcode)) throw new DioError("EINVAL", "io_submit", `opcode ${String(iocb.opcode)} is not one of ${[...OPCODES].join(", ")}`);
    if (!(iocb.fh instanceof FileHandle) || iocb.fh.isClosed) throw new DioError("EBADF", "io_submit", "the iocb's file handle is not open");
    const access = iocb.fh.flags & O_ACCMODE;
    const writes = iocb.opcode === "pwrite" || iocb.opcode === "pwritev";
    const reads = iocb.opcode === "pread" || iocb.opcode === "preadv";
    if (writes && access === O_RDONLY) throw new DioError("EBADF", "io_submit", `file descriptor ${iocb.fh.fd} is not open for writing (O_RDONLY)`);
    if (reads && access === O_WRONLY) throw new DioError("EBADF", "io_submit", `file descriptor ${iocb.fh.fd} is not open for reading (O_WRONLY)`);
    if ((iocb.opcode === "pread" || iocb.opcode === "pwrite") && !(iocb.buf instanceof Uint8Array)) {
      throw new DioError("EINVAL", "io_submit", `a ${iocb.opcode} iocb needs buf, a Uint8Array`);
    }
    if ((iocb.opcode === "preadv" || iocb.opcode === "pwritev") && (!Array.isArray(iocb.bufs) || iocb.bufs.some((b) => !(b instanceof Uint8Array)))) {
      throw new DioError("EINVAL", "io_submit", `a ${iocb.opcode} iocb needs bufs, an array of Uint8Array`);
    }
    const offset = iocb.offset ?? 0;
    if ((reads || writes) && (!Number.isInteger(offset) || offset < 0)) throw new DioError("EINVAL", "io_submit", `offset ${String(iocb.offset)} must be a non-negative integer`);
    const rwFlags = iocb.rwFlags ?? 0;
    if (!Number.isInteger(rwFlags) || (rwFlags & ~RW_FLAGS_KNOWN) !== 0) {
      throw new DioError("ENOTSUP", "io_submit", `rwFlags ${String(iocb.rwFlags)} has bits other than RWF_DSYNC (${RWF_DSYNC}) and RWF_SYNC (${RWF_SYNC})`);
    }
  }

  /** Runs one request and posts its event, from the completion path (never io_submit's stack). */
  private run(iocb: Iocb): void {
    const writes = iocb.opcode === "pwrite" || iocb.opcode === "pwritev";
    const direct = (iocb.fh.flags & O_DIRECT) !== 0 && !(iocb.fh instanceof BlockDeviceHandle);
    // The durability oracle sees a direct write from submission to event (a buffered one through
    // its FileHandle call, and a per-iocb sync as a sync).
    // An O_APPEND write's place is decided under the inode lock (recordWrite's place()).
    const record = writes && direct && iocb.fh.recorded
      ? iocb.fh.recordWrite(iocb.offset ?? 0, iocb.opcode === "pwrite" ? [iocb.buf!] : iocb.bufs!, `io_getevents event of iocb data=${String(iocb.data)}`)
      : null;
    // The disk's close() waits for the request until its event is posted.
    const disk = iocb.fh.ioDisk();
    disk.holdRequest();
    const request = new AioRequest(this, iocb, direct, record, disk);
    if (toStart.push(request) === 1) queueMicrotask(startAll);
  }

  /** @internal Starts an accepted request (from startAll()). */
  start(request: AioRequest): void {
    const iocb = request.iocb;
    let pending: void | Promise<void>;
    try {
      // O_DIRECT on a file: queued when the kernel would queue it (see perform()).
      pending = request.direct && (iocb.opcode === "pwrite" || iocb.opcode === "pread")
        ? iocb.fh.aioDirect(iocb.opcode === "pread" ? "read" : "write", [iocb.buf!], iocb.offset ?? 0, iocb.rwFlags ?? 0, iocb, "io_submit", request.complete, request.record)
        : this.perform(iocb, request.complete, request.record);
    } catch (error) {
      request.failed(error);
      return;
    }
    if (pending !== undefined) pending.then(undefined, (error: unknown) => request.failed(error));
  }

  /** @internal aio_complete(): the event of a finished request. */
  completed(request: AioRequest, res: number): void {
    this.inflight--;
    this.post({ data: request.iocb.data, obj: request.iocb, res, res2: 0 });
  }

  private async perform(iocb: Iocb, complete: (res: number) => void, record: { place(at: number): void } | null): Promise<void> {
    const { fh } = iocb;
    const offset = iocb.offset ?? 0;
    const rw = iocb.opcode === "pread" || iocb.opcode === "preadv" || iocb.opcode === "pwrite" || iocb.opcode === "pwritev";
    if (rw && (fh.flags & O_DIRECT) !== 0 && !(fh instanceof BlockDeviceHandle)) {
      // O_DIRECT on a file: queued when the kernel would queue it, completed by its last bio or
      // by the filesystem's completion queue, which posts the event itself (per semantics).
      const op = iocb.opcode === "pread" || iocb.opcode === "preadv" ? "read" : "write";
      const buffers = iocb.buf !== undefined && (iocb.opcode === "pread" || iocb.opcode === "pwrite") ? [iocb.buf] : iocb.bufs!;
      await fh.aioDirect(op, buffers, offset, iocb.rwFlags ?? 0, iocb, "io_submit", complete, record);
      return;
    }
    switch (iocb.opcode) {
      case "pread":
        return complete((await fh.read(iocb.buf!, 0, iocb.buf!.length, offset)).bytesRead);
      case "preadv":
        return complete((await fh.readv(iocb.bufs!, offset)).bytesRead);
      case "pwrite":
      case "pwritev": {
        const written = iocb.opcode === "pwrite"
          ? (await fh.write(iocb.buf!, 0, iocb.buf!.length, offset)).bytesWritten
          : (await fh.writev(iocb.bufs!, offset)).bytesWritten;
        return complete(await this.syncPerIocb(iocb, written));
      }
      case "fsync":
        await fh.sync();
        return complete(0);
      case "fdsync":
        await fh.datasync();
        return complete(0);
    }
  }

  /** Per-iocb RWF_SYNC / RWF_DSYNC: a successful write is synced before its event (pwritev2). */
  private async syncPerIocb(iocb: Iocb, res: number): Promise<number> {
    const rwFlags = iocb.rwFlags ?? 0;
    if (res <= 0 || (iocb.opcode !== "pwrite" && iocb.opcode !== "pwritev")) return res;
    // fsync / fdatasync, which the durability oracle records as syncs of the file.
    if ((rwFlags & RWF_SYNC) !== 0) await iocb.fh.sync();
    else if ((rwFlags & RWF_DSYNC) !== 0) await iocb.fh.datasync();
    return res;
  }

  private post(event: IoEvent): void {
    this.ring.push(event);
    this.serveWaiters();
    if (this.inflight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** Serves, in arrival order, every waiter whose minimum the ring now meets. */
  private serveWaiters(): void {
    for (let i = 0; i < this.waiters.length; ) {
      const waiter = this.waiters[i];
      if (this.ring.length >= waiter.minNr) {
        this.waiters.splice(i, 1);
        if (waiter.timer !== undefined) clearTimeout(waiter.timer);
        waiter.resolve(this.ring.splice(0, waiter.nr));
      } else {
        i++;
      }
    }
  }

  /**
   * io_getevents(): resolves with between minNr and nr events, in completion order, or with fewer
   * (maybe none) when `timeoutMs` passes first. Without a timeout it waits as long as it takes.
   */
  getEvents(minNr: number, nr: number, timeoutMs?: number): Promise<IoEvent[]> {
    if (!Number.isInteger(minNr) || !Number.isInteger(nr) || minNr < 0 || nr < 0 || minNr > nr) {
      return Promise.reject(new DioError("EINVAL", "io_getevents", `minNr ${String(minNr)} and nr ${String(nr)} must be integers with 0 <= minNr <= nr`));
    }
    if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !(timeoutMs >= 0))) {
      return Promise.reject(new DioError("EINVAL", "io_getevents", `timeoutMs ${String(timeoutMs)} must be a non-negative number`));
    }
    if (this.destroyed && this.inflight === 0 && this.ring.length < Math.max(minNr, 1)) {
      return Promise.reject(new DioError("EINVAL", "io_getevents", "the AIO context was destroyed"));
    }
    // A caller whose minimum is met now never waits behind another (min_nr 0 never blocks).
    if (this.ring.length >= minNr) return Promise.resolve(this.ring.splice(0, nr));
    return new Promise((resolve) => {
      const waiter: Waiter = { minNr, nr, resolve };
      if (timeoutMs !== undefined && timeoutMs !== Infinity) {
        // setTimeout takes at most 2^31 - 1 ms (it fires at once for more): a longer timeout
        // waits in steps of that.
        const deadline = performance.now() + timeoutMs;
        const arm = (ms: number): void => {
          waiter.timer = setTimeout(() => {
            const left = deadline - performance.now();
            if (left > 0 && ms === TIMER_MS_MAX) {
              arm(Math.min(left, TIMER_MS_MAX));
              return;
            }
            const index = this.waiters.indexOf(waiter);
            if (index >= 0) this.waiters.splice(index, 1);
            resolve(this.ring.splice(0, nr));
          }, ms);
        };
        arm(Math.min(timeoutMs, TIMER_MS_MAX));
      }
      this.waiters.push(waiter);
    });
  }

  /** io_cancel(): direct IO (and everything here) cannot be cancelled: EINVAL. */
  cancel(iocb: Iocb): Promise<IoEvent> {
    void iocb;
    return Promise.reject(new DioError("EINVAL", "io_cancel", "the request cannot be cancelled (direct IO has no cancel method)"));
  }

  /** io_destroy(): waits for every request in flight; the context takes no more. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    while (this.inflight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    for (const waiter of this.waiters.splice(0)) {
      if (waiter.timer !== undefined) clearTimeout(waiter.timer);
      waiter.resolve(this.ring.splice(0, waiter.nr));
    }
  }
}

/** io_setup(): a context for up to `nrEvents` requests in flight or events not yet reaped. */
export function ioSetup(nrEvents: number): AioContext {
  if (!Number.isInteger(nrEvents) || nrEvents <= 0 || nrEvents > AIO_EVENTS_MAX) {
    throw new DioError("EINVAL", "io_setup", `nrEvents ${String(nrEvents)} must be an integer in 1..${AIO_EVENTS_MAX}`);
  }
  return new AioContext(nrEvents);
}

/**
 * Accepted requests of every context not yet started, in io_submit order: io_submit returns
 * first, then one microtask starts every request accepted by then, in the order they were
 * submitted (across contexts too, as io_submit submits before it returns).
 */
let toStart: AioRequest[] = [];
function startAll(): void {
  const batch = toStart;
  toStart = [];
  for (const request of batch) request.ctx.start(request);
}

/** One accepted iocb until its event is posted. */
class AioRequest {
  private posted = false;

  constructor(
    readonly ctx: AioContext,
    readonly iocb: Iocb,
    readonly direct: boolean,
    readonly record: WriteDone | null,
    private readonly disk: Disk,
  ) {}

  /** Posts the event, once. */
  readonly complete = (res: number): void => {
    if (this.posted) throw new Error("dioemu: an iocb completed twice");
    this.posted = true;
    this.record?.(res, this.iocb.fh.writesDsync(this.iocb.rwFlags ?? 0));
    this.ctx.completed(this, res);
    this.disk.releaseRequest();
  };

  /** A request that fails before it is queued posts its error as the event; a failure after its
   *  event was posted is a bug, which surfaces as an unhandled rejection. */
  failed(error: unknown): void {
    if (this.posted) {
      void Promise.reject(error);
      return;
    }
    this.complete(error instanceof DioError ? error.errno : -5);
  }
}
