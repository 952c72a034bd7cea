// Background destaging: a Worker thread, with its own instance of the core over the disk's shared
// memory, writes back the volatile cache's entries that the device released (assembly/device.ts,
// "background destaging"), so that the thread submitting IO does not pay for the write-back
// copies once the cache is full. It claims a run of released entries under the device lock,
// copies them without it, and retires them under it (assembly/device.ts destageClaimed()). What
// is released, and that a released entry is written back whole, is decided by the device on the
// submitting thread; the thread only does the work sooner.
// So nothing observable depends on its timing: reads see the newest version either way, a power cut
// first writes back what is released, stats() too, and a flush or an append that needs room takes
// released entries the same way the thread would.
import type { Disk } from "./disk.js";
import { CTRL, LAYOUT_BASE } from "./layout.js";
import { spawnCoreWorker, type WorkerLike } from "./workqueue.js";

/** The thread's words, as Int32 indexes from the control block's start. */
export const DESTAGE_WORDS = {
  BELL: CTRL.DESTAGE_BELL / 4, STOP: CTRL.DESTAGE_STOP / 4, SLEEPING: CTRL.DESTAGE_SLEEPING / 4,
  SHARE_READY: CTRL.SHARE_READY / 4, SHARE_WAKE: CTRL.SHARE_WAKE / 4,
} as const;
const TARGET = CTRL.DESTAGE_TARGET / 4;
const ENABLED = CTRL.DESTAGE_ENABLED / 4;
/** The low word of the count of writes that went past the cache. */
const BYPASSED = CTRL.STAT_BYPASS_WRITES / 4;

export class Destager {
  /** @internal Test hook: false keeps new threads from starting (as where Workers are missing),
   *  so that a run can be compared with the same run destaged by its thread. */
  static threads = true;

  /** The control block's words. */
  private readonly words: Int32Array;
  /** The target the thread was last rung for. */
  private rung = 0;
  private starting: Promise<void> | null = null;
  private worker: WorkerLike | null = null;
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly poll: () => void;
  /** Why the thread could not start or died, if it did (the submitting thread then writes back
   *  released entries itself, when it needs room). */
  failedWith: unknown;

  constructor(private readonly disk: Disk) {
    this.words = new Int32Array(disk.memory.buffer, LAYOUT_BASE, CTRL.SHARE_WAKE / 4 + 1);
    Atomics.store(this.words, ENABLED, 1);
    this.rung = Atomics.load(this.words, TARGET);
    this.poll = () => this.check();
    disk.device.pollers.add(this.poll);
    disk.device.idlePollers.add(this.poll);
  }

  /** Resolves once the thread is running, or could not start; at once when the device has not
   *  released anything yet (the thread starts at the first release). Benchmarks await it before
   *  they time anything, as fio's ramp_time lets a job's threads start. */
  ready(): Promise<void> {
    return this.starting ?? Promise.resolve();
  }

  /** Whether the thread is running. */
  get running(): boolean {
    return this.worker !== null && this.failedWith === undefined && !this.stopped;
  }

  /** At each device step: rings the thread when the device released more (starting it the
   *  first time it released something, or a large write first went past the cache: the thread
   *  then shares the copies, see assembly/device.ts). */
  private check(): void {
    const target = Atomics.load(this.words, TARGET);
    const bypassed = Atomics.load(this.words, BYPASSED) !== 0;
    if (bypassed && this.worker === null && this.starting === null && !this.stopped && Destager.threads) {
      this.starting = this.start();
      return;
    }
    if (target === this.rung || this.stopped) return;
    this.rung = target;
    if (this.worker !== null) {
      this.ring();
      return;
    }
    if (Destager.threads) this.starting ??= this.start();
  }

  /** Wakes the thread. A thread that has not said it sleeps looks at the target again after
   *  saying so (the atomics are sequentially consistent), so only a sleeper needs the notify. */
  private ring(): void {
    Atomics.add(this.words, DESTAGE_WORDS.BELL, 1);
    if (Atomics.load(this.words, DESTAGE_WORDS.SLEEPING) !== 0) Atomics.notify(this.words, DESTAGE_WORDS.BELL);
  }

  private async start(): Promise<void> {
    let worker: WorkerLike;
    try {
      worker = await spawnCoreWorker(new URL("./destageworker.js", import.meta.url), this.disk.memory, LAYOUT_BASE, "dioemu-destager");
    } catch (error) {
      // No thread (no Worker support, a refused script): released entries are written back here,
      // by appends that need room, flushes and power cuts, as they would be anyway.
      this.failedWith = error;
      return;
    }
    this.exited = new Promise((resolve) => worker.onExit(() => {
      // A thread that ends before it was asked to may have left a claim: give it up.
      if (!this.stopped) this.disk.core.dev_destage_abandon();
      resolve();
    }));
    worker.onError((error) => {
      this.failedWith = error;
      this.disk.core.dev_destage_abandon();
    });
    // It posts nothing; a browser worker's end comes as a message, which this handler sees.
    worker.onMessage(() => undefined);
    this.worker = worker;
    // Whatever was released while the thread started.
    if (!this.stopped) this.ring();
  }

  /** @internal Test hook: ends the thread as its crash would (no stop asked). */
  async kill(): Promise<void> {
    await this.starting;
    this.worker?.terminate();
    await this.exited;
  }

  /** Writes back, on this thread, everything released (before counters are read). */
  settle(): void {
    this.disk.core.dev_destage_released(0xffffffff);
  }

  /** Stops the thread (at Disk.close). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.disk.device.pollers.delete(this.poll);
    this.disk.device.idlePollers.delete(this.poll);
    await this.starting;
    if (this.worker !== null) {
      // Keep the process alive until the thread has exited (it is unref'd while it idles).
      this.worker.ref();
      Atomics.store(this.words, DESTAGE_WORDS.STOP, 1);
      Atomics.add(this.words, DESTAGE_WORDS.BELL, 1);
      Atomics.notify(this.words, DESTAGE_WORDS.BELL);
      await this.exited;
    }
  }
}
