// Work queues (kernel/workqueue.c, as far as the direct-IO completion path uses them): a FIFO of
// work items run with at most `maxActive` in flight, drained and destroyed at unmount. The seed
// patch's per-superblock "dio-sync" queue (max_active 1) and the 3.11+ "dio/<sb>" queue (max_active
// up to 256) are both WorkQueues; which one a filesystem gets is its semantics' choice.
//
// Items never run on the caller's stack: they start from the device's completion path (the
// "worker context" of spec 8), so a bio completion that queues work never runs an fsync itself.
//
// Executors. "inline": items run on this thread, in a deterministic order on the device's virtual
// clock (a seed reproduces a run exactly). "worker": in addition, the device cache flushes that the
// queue's items issue run on a real Worker thread with its own instance of the core over the disk's
// shared memory: it takes the device lock, destages the volatile cache up to the point the flush
// covers, and reports back. A worker that wakes serves every flush queued by then with one flush.
// The filesystem part of a sync (writeback of dirty pages, a metadata commit) stays on the thread
// that owns the filesystem's state.
import type { Disk } from "./disk.js";
import { DioError, ERRNO } from "./errors.js";

export type Executor = "inline" | "worker";

/** Counters a test or a curious user can read. */
export interface WorkQueueStats {
  queued: number;
  completed: number;
  /** The most items that ran at once. */
  maxRunning: number;
}

type Work = () => Promise<void>;
/** An item of the queue: general work, or one whose whole work is a cache flush (see queueFlush). */
type Item = { kind: "work"; run: Work } | { kind: "flush"; after: (status: number) => void };

/** A work queue; make one with WorkQueue.createNow(). */
export class WorkQueue {
  readonly stats: WorkQueueStats = { queued: 0, completed: 0, maxRunning: 0 };
  private readonly pending: Item[] = [];
  private running = 0;
  /** Flush items handed to the Worker thread and not yet reported back. */
  private delegated = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private destroyed = false;

  /** The flush thread of the "worker" executor, started by the first flush; null until then. */
  private flusherStart: Promise<FlushWorker> | null = null;

  private constructor(
    readonly name: string,
    readonly maxActive: number,
    private readonly disk: Disk,
    readonly executor: Executor,
  ) {}

  /** The flush thread, once started (the "worker" executor). */
  get flusher(): Promise<FlushWorker> | null {
    return this.flusherStart;
  }

  /**
   * alloc_workqueue(): asynchronous, as the kernel's may sleep, so two first users can both get
   * here before either installs its queue (the race the seed settles with a compare-and-swap).
   */
  /** Makes a queue (a worker thread, with the worker executor, starts on first use). */
  static createNow(disk: Disk, name: string, maxActive: number, executor: Executor): WorkQueue {
    WorkQueue.check(disk, name, maxActive, executor);
    return new WorkQueue(name, maxActive, disk, executor);
  }

  private static check(disk: Disk, name: string, maxActive: number, executor: Executor): void {
    if (!Number.isInteger(maxActive) || maxActive < 1) throw new Error(`dioemu: workqueue ${name}: max_active ${maxActive} must be at least 1`);
    if (executor === "worker" && !(disk.memory.buffer instanceof SharedArrayBuffer)) {
      throw new DioError("ENOTSUP", "alloc_workqueue", "the worker executor needs the disk's memory to be shared");
    }
  }

  /** Items queued or running. */
  get busy(): number {
    return this.pending.length + this.running + this.delegated;
  }

  /** queue_work(): the item runs after those queued before it, once a slot is free. */
  queue(work: Work): void {
    if (this.destroyed) throw new Error(`dioemu: work queued on the destroyed workqueue ${this.name}`);
    this.pending.push({ kind: "work", run: work });
    this.stats.queued++;
    this.startMore();
  }

  /**
   * Queues an item whose whole work is one cache flush, then `after(status)` on this thread. On
   * the inline executor it is an ordinary item. On the worker executor the Worker thread runs it:
   * such items are handed over as they reach the head of the queue, and the thread carries them
   * out in order — with max_active 1, one flush per item, one after the other (the seed's
   * ordered queue); otherwise one flush serves every item waiting for it — so a run of them costs
   * one wake of the thread, not one per item. General work still waits its turn behind them.
   */
  queueFlush(after: (status: number) => void): void {
    if (this.executor !== "worker" || this.workerFailed) {
      this.queue(async () => after(await this.flush()));
      return;
    }
    if (this.destroyed) throw new Error(`dioemu: work queued on the destroyed workqueue ${this.name}`);
    this.pending.push({ kind: "flush", after });
    this.stats.queued++;
    this.startMore();
  }

  private startMore(): void {
    while (this.pending.length > 0) {
      const head = this.pending[0];
      if (head.kind === "flush") {
        // The thread runs handed-over items one at a time when max_active is 1: any number may
        // wait there; general work must not be running meanwhile.
        const room = this.maxActive === 1 ? this.running === 0 : this.running + this.delegated < this.maxActive;
        if (!room) break;
        this.pending.shift();
        this.delegated++;
        this.stats.maxRunning = Math.max(this.stats.maxRunning, this.maxActive === 1 ? 1 : this.running + this.delegated);
        void this.flush().then((status) => {
          try {
            head.after(status);
          } catch (error) {
            queueMicrotask(() => { throw error; });
          } finally {
            this.delegated--;
            this.ended();
          }
        });
        continue;
      }
      if (this.running + this.delegated >= this.maxActive) break;
      this.pending.shift();
      this.running++;
      this.stats.maxRunning = Math.max(this.stats.maxRunning, this.running);
      this.disk.device.defer(() => void this.runOne(head.run));
    }
  }

  private async runOne(work: Work): Promise<void> {
    try {
      await work();
    } catch (error) {
      // An item reports its own errors (in the event it posts); one that throws is a bug here.
      queueMicrotask(() => { throw error; });
    } finally {
      this.running--;
      this.ended();
    }
  }

  /** An item ended: the next ones may start, and drain() resolves once nothing is left. */
  private ended(): void {
    this.stats.completed++;
    this.startMore();
    if (this.busy === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** drain_workqueue(): resolves when nothing is queued or running. */
  drain(): Promise<void> {
    if (this.busy === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** destroy_workqueue(): drains, then stops the executor (the Worker thread exits). */
  async destroy(): Promise<void> {
    await this.drain();
    this.destroyed = true;
    const start = this.flusherStart;
    this.flusherStart = null;
    this.flusherReady = null;
    if (start !== null) await (await start.catch(() => null))?.stop();
  }

  /** The disk is closing: no drain (nothing can complete any more), the thread stops now. */
  abandon(): void {
    this.destroyed = true;
    const start = this.flusherStart;
    this.flusherStart = null;
    this.flusherReady = null;
    if (start !== null) void start.then((f) => f.stop(), () => undefined);
  }

  /**
   * The cache flush that ends a sync run by an item of this queue: through the block layer on the
   * inline executor, on the Worker thread on the worker executor. Resolves with 0 or -errno.
   */
  flush(): Promise<number> {
    // The thread, once started and healthy, takes the request at once (no await of its start).
    const ready = this.flusherReady;
    if (ready !== null && !this.destroyed && !this.workerFailed && ready.failedWith === undefined) return ready.flush();
    return this.flushStarting();
  }
  /** The started flush thread, once its start resolved. */
  private flusherReady: FlushWorker | null = null;

  private async flushStarting(): Promise<number> {
    if (this.executor === "inline" || this.destroyed || this.workerFailed) return this.disk.queue.flushWait();
    // The Worker thread is created lazily, by the first flush the queue needs.
    this.flusherStart ??= FlushWorker.start(this.disk, this.name, this.maxActive === 1);
    // A flush asked for before a power cut that comes while the thread starts covers writes the
    // cut decided on: it fails, as a flush in flight at the cut does.
    const cuts = this.disk.crashCount;
    let flusher: FlushWorker;
    try {
      flusher = await this.flusherStart;
      if (this.disk.crashCount !== cuts) return -ERRNO.EIO;
      if (flusher.failedWith !== undefined) throw flusher.failedWith;
    } catch (error) {
      // A thread that cannot start (no Worker support, a refused script) must not fail every
      // sync silently: say so once, and flush through the block layer from now on.
      if (!this.workerFailed) {
        this.workerFailed = true;
        const message = `dioemu: the flush worker of ${this.name} could not start or stopped (${(error as Error)?.message ?? String(error)}); flushing on this thread instead`;
        if (typeof process !== "undefined" && typeof process.emitWarning === "function") process.emitWarning(message);
        else console.warn(message);
      }
      return this.flush();
    }
    this.flusherReady = this.flusherStart === null ? null : flusher;
    return flusher.flush();
  }
  private workerFailed = false;
}

// ---- the flush thread ---------------------------------------------------------------------------

/** Words of the shared control block (Int32 indexes) between this thread and the flush worker. */
export const FLUSH_WORDS = {
  /** Flush requests made so far (the doorbell: the worker waits on it). */
  REQUESTED: 0,
  /** Requests served: every request numbered up to this one has had a flush issued after it. */
  SERVED: 1,
  /** Set to 1 to stop the worker. */
  STOP: 2,
  /** Flushes the worker issued (each serves every request pending when it woke). */
  FLUSHES: 3,
  /** Bumped by every request and by the stop: the word the worker sleeps on. */
  DOORBELL: 4,
  /** 1: one flush per request, in order (an ordered queue, max_active 1); 0: one flush serves
   *  every request pending when the worker wakes. */
  ORDERED: 5,
  /** 1 while the worker is about to sleep or sleeps on DOORBELL: only then does a request need
   *  an Atomics.notify (a system call), not while it polls. */
  SLEEPING: 6,
} as const;
const CONTROL_BYTES = 64;

/** How long a thread whose device went idle waits for the flush thread's answer before it sleeps
 *  in its event loop (the thread answers within microseconds while it polls). */
const IDLE_WAIT_MS = 0.2;
/** The first part of that wait, spent polling. */
const IDLE_SPIN_MS = 0.02;

/** Whether this thread may block in Atomics.wait: Node's threads may, a browser page may not. */
const MAY_BLOCK = typeof process !== "undefined" && process.versions?.node !== undefined;

interface PendingFlush { seq: number; resolve(status: number): void; status: number }

/**
 * The Worker thread of the "worker" executor. This thread posts flush requests into a control
 * block in the disk's memory and rings the doorbell (Atomics.notify); the worker drains every
 * request queued when it woke with one flush (flush mark and destage, under the device lock, in its
 * own core instance) and posts back the number served.
 */
export class FlushWorker {
  private readonly words: Int32Array;
  private readonly pending: PendingFlush[] = [];
  private stopped = false;
  private cutsAtStart: number;
  private exited: Promise<void>;
  private readonly poll: () => void;
  private readonly idleWait: () => void;
  private readonly unhook: () => void;
  private waiting = false;

  private constructor(
    private readonly disk: Disk,
    private readonly control: Uint8Array,
    private readonly worker: WorkerLike,
  ) {
    this.words = new Int32Array(control.buffer, control.byteOffset, CONTROL_BYTES / 4);
    this.cutsAtStart = disk.crashCount;
    this.exited = new Promise((resolve) => worker.onExit(() => resolve()));
    worker.onMessage((served) => this.served(served));
    this.poll = () => {
      if (this.pending.length > 0) this.served(Atomics.load(this.words, FLUSH_WORDS.SERVED));
    };
    disk.device.pollers.add(this.poll);
    this.idleWait = () => this.waitBriefly();
    if (MAY_BLOCK) disk.device.idlePollers.add(this.idleWait);
    worker.onError((error) => this.fail(error));
    this.unhook = disk.onPowerCut(() => this.powerCut());
  }

  /** Starts the thread and waits until its core instance is attached to the disk's memory. */
  static async start(disk: Disk, name: string, ordered: boolean): Promise<FlushWorker> {
    if (!(disk.memory.buffer instanceof SharedArrayBuffer)) {
      throw new DioError("ENOTSUP", "alloc_workqueue", "the worker executor needs the disk's memory to be shared");
    }
    const control = disk.alloc(CONTROL_BYTES, 64);
    control.fill(0);
    new Int32Array(control.buffer, control.byteOffset, CONTROL_BYTES / 4)[FLUSH_WORDS.ORDERED] = ordered ? 1 : 0;
    let worker: WorkerLike;
    try {
      worker = await spawnFlushWorker(disk.memory, control.byteOffset, name);
    } catch (error) {
      disk.free(control);
      throw error;
    }
    return new FlushWorker(disk, control, worker);
  }

  /** Flushes the worker issued so far. */
  get flushes(): number {
    return Atomics.load(this.words, FLUSH_WORDS.FLUSHES);
  }

  /**
   * Asks for a cache flush issued after every write completed so far. Faults injected on flushes
   * and power cuts apply as on the device's own flushes; the trace shows it as a flush (D, C).
   */
  flush(): Promise<number> {
    if (this.stopped) return Promise.resolve(-ERRNO.EIO);
    const device = this.disk.device;
    device.traceFlush("Q", 0);
    device.traceFlush("D", 0);
    // A flush the fault rules fail still takes its turn on the thread, so that an ordered queue's
    // completions stay in order; its status is the fault's.
    const fault = device.takeFlushFault();
    return new Promise((resolve) => {
      const seq = Atomics.add(this.words, FLUSH_WORDS.REQUESTED, 1) + 1;
      // While a flush waits for the thread, the thread keeps the process alive (its answer comes
      // as a message or a notify); an idle one does not.
      if (this.pending.length === 0) this.worker.ref();
      this.pending.push({ seq, resolve, status: fault });
      Atomics.add(this.words, FLUSH_WORDS.DOORBELL, 1);
      // A worker that said it sleeps (or is about to) needs the notify. One that has not said so
      // re-reads REQUESTED after saying it, so it sees this request (the atomics are sequentially
      // consistent): no wake-up is lost.
      if (Atomics.load(this.words, FLUSH_WORDS.SLEEPING) !== 0) Atomics.notify(this.words, FLUSH_WORDS.DOORBELL);
      this.armWait();
    });
  }

  /** Waits (without blocking) for the worker's notify on SERVED, where Atomics.waitAsync exists:
   *  quicker than its message. One wait at a time, re-armed while requests are pending. */
  private armWait(): void {
    const waitAsync = (Atomics as { waitAsync?: (a: Int32Array, i: number, v: number) => { async: boolean; value: Promise<string> | string } }).waitAsync;
    if (this.waiting || waitAsync === undefined) return;
    const seen = Atomics.load(this.words, FLUSH_WORDS.SERVED);
    const result = waitAsync(this.words, FLUSH_WORDS.SERVED, seen);
    const wake = (): void => {
      this.waiting = false;
      this.served(Atomics.load(this.words, FLUSH_WORDS.SERVED));
      if (this.pending.length > 0 && !this.stopped) this.armWait();
    };
    if (!result.async) {
      queueMicrotask(wake);
      return;
    }
    this.waiting = true;
    void (result.value as Promise<string>).then(wake);
  }

  /**
   * The device went idle with flushes pending on the thread: the emulated CPU has nothing to run
   * but what they complete, so wait for the thread here, up to IDLE_WAIT_MS (polling the served
   * word), instead of sleeping in the event loop until the answer wakes it. Only where this
   * thread may block (Node; never a browser page).
   */
  private waitBriefly(): void {
    if (this.pending.length === 0 || this.stopped) return;
    // The thread serves a run of requests at once (one store of SERVED, then a notify). Poll for a
    // few microseconds (an answer that is near costs no sleep), then sleep on SERVED for the rest of
    // IDLE_WAIT_MS: a sleeper gives its core to the flush thread, which a poller would keep from
    // running when other work shares the machine's cores.
    const want = this.pending[0].seq;
    let seen = Atomics.load(this.words, FLUSH_WORDS.SERVED);
    if (seen < want) {
      const start = performance.now();
      const spinUntil = start + IDLE_SPIN_MS;
      const deadline = start + IDLE_WAIT_MS;
      for (let polls = 1; seen < want; polls++) {
        if ((polls & 63) === 0 && performance.now() > spinUntil) break;
        seen = Atomics.load(this.words, FLUSH_WORDS.SERVED);
      }
      for (let now = performance.now(); seen < want && now < deadline; now = performance.now()) {
        Atomics.wait(this.words, FLUSH_WORDS.SERVED, seen, deadline - now);
        seen = Atomics.load(this.words, FLUSH_WORDS.SERVED);
      }
    }
    this.served(seen);
  }

  private served(served: number): void {
    const alive = this.disk.crashCount === this.cutsAtStart;
    while (this.pending.length > 0 && this.pending[0].seq <= served) {
      const p = this.pending.shift()!;
      const status = alive ? p.status : -ERRNO.EIO;
      this.disk.device.traceFlush("C", status);
      p.resolve(status);
    }
    if (this.pending.length === 0 && !this.stopped) this.worker.unref();
  }

  /** Flushes not yet served when the power goes fail with EIO. */
  private powerCut(): void {
    if (!this.stopped) this.worker.unref();
    for (const p of this.pending.splice(0)) {
      this.disk.device.defer(() => {
        this.disk.device.traceFlush("C", -ERRNO.EIO);
        p.resolve(-ERRNO.EIO);
      });
    }
  }

  /** The thread died: what was pending fails, and the queue flushes on its own thread from now
   *  on (WorkQueue.flush sees `failed`). */
  private fail(error: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.failedWith = error;
    this.disk.device.pollers.delete(this.poll);
    this.disk.device.idlePollers.delete(this.idleWait);
    this.unhook();
    for (const p of this.pending.splice(0)) p.resolve(-ERRNO.EIO);
  }

  /** The error the thread died of, if it did. */
  failedWith: unknown;

  /** Stops the thread (after the queue drained) and returns its control block to the arena. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.disk.device.pollers.delete(this.poll);
    this.disk.device.idlePollers.delete(this.idleWait);
    this.unhook();
    // Keep the process alive until the thread has exited (it is unref'd while it idles).
    this.worker.ref();
    Atomics.store(this.words, FLUSH_WORDS.STOP, 1);
    Atomics.add(this.words, FLUSH_WORDS.DOORBELL, 1);
    Atomics.notify(this.words, FLUSH_WORDS.DOORBELL);
    await this.exited;
    for (const p of this.pending.splice(0)) p.resolve(-ERRNO.EIO);
    if (!this.disk.isClosed) this.disk.free(this.control);
  }
}

/** What this module needs of a Worker, in Node (worker_threads) or a browser. */
export interface WorkerLike {
  onMessage(handler: (served: number) => void): void;
  onError(handler: (error: unknown) => void): void;
  onExit(handler: () => void): void;
  /** The thread keeps the process alive (Node); a no-op in browsers. */
  ref(): void;
  /** The thread no longer keeps the process alive (Node); a no-op in browsers. */
  unref(): void;
  /** Ends the thread at once, wherever it is. */
  terminate(): void;
}

/** Starts the flush worker script over `memory`; resolves once it reports ready. */
function spawnFlushWorker(memory: WebAssembly.Memory, controlOffset: number, name: string): Promise<WorkerLike> {
  return spawnCoreWorker(new URL("./flushworker.js", import.meta.url), memory, controlOffset, name);
}

/**
 * Starts a worker script that runs its own instance of the core over `memory` (a flush worker,
 * the destager), with its control words at `controlOffset`; resolves once it reports ready. In
 * Node the thread does not keep the process alive until ref() is called.
 */
export async function spawnCoreWorker(url: URL, memory: WebAssembly.Memory, controlOffset: number, name: string): Promise<WorkerLike> {
  const data = { memory, controlOffset };
  if (typeof process !== "undefined" && process.versions?.node !== undefined) {
    const { Worker } = await import("node:worker_threads");
    // The parent's command-line flags (--input-type, --eval...) are not the worker's.
    const worker = new Worker(url, { workerData: data, name, execArgv: [] });
    // A queue left running must not keep the process alive (unmount stops it in order).
    worker.unref();
    await new Promise<void>((resolve, reject) => {
      worker.once("message", (m: unknown) => (m === "ready" ? resolve() : reject(new Error(`dioemu: ${name} worker said ${String(m)}`))));
      worker.once("error", reject);
    });
    return {
      onMessage: (handler) => {
        worker.on("message", (m: number) => handler(m));
        // A 'message' listener refs the thread's port again: a thread left running (a queue never
        // stopped, a disk never closed) must still not keep the process alive.
        worker.unref();
      },
      onError: (handler) => worker.on("error", handler),
      onExit: (handler) => worker.once("exit", () => handler()),
      ref: () => worker.ref(),
      unref: () => worker.unref(),
      terminate: () => void worker.terminate(),
    };
  }
  const worker = new Worker(url, { type: "module", name });
  worker.postMessage(data);
  await new Promise<void>((resolve, reject) => {
    worker.onmessage = (e) => (e.data === "ready" ? resolve() : reject(new Error(`dioemu: ${name} worker said ${String(e.data)}`)));
    worker.onerror = (e) => reject(new Error(e.message));
  });
  let exit: (() => void) | undefined;
  return {
    onMessage: (handler) => {
      worker.onmessage = (e) => {
        if (e.data === "exit") {
          worker.terminate();
          exit?.();
        } else {
          handler(e.data as number);
        }
      };
    },
    onError: (handler) => { worker.onerror = (e) => handler(new Error(e.message)); },
    onExit: (handler) => { exit = handler; },
    ref: () => undefined,
    unref: () => undefined,
    terminate: () => {
      worker.terminate();
      exit?.();
    },
  };
}
