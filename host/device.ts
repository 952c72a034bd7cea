// The device's timing and sequencing on the host: requests in flight on a virtual clock with
// seeded latencies, completion in batches off the submitter's stack, the flush state machine with
// blk-flush coalescing, and the power cut. Data movement itself is the core's (assembly/device.ts).
import type { CoreExports } from "./core.js";
import { DioError, ERRNO } from "./errors.js";
import type { Prng } from "./prng.js";
import type { Tracer } from "./trace.js";

/** One request at the device: a piece of a split bio, or a cache flush. */
export interface DeviceRequest {
  kind: "read" | "write" | "flush";
  sector: number;
  sectors: number;
  bvecIndex: number;
  bvecDone: number;
  /** Write-through: the data is durable when the request completes. */
  fua: boolean;
  /** Flags shown in the trace. */
  flags: string[];
  /** Called once, from the completion path, with 0 or -errno. */
  done(status: number): void;
  /** Set by dispatch(): the tick it is due at, its place in dispatch order, and for a flush the
   *  cache log position it covers. */
  dueTick?: number;
  order?: number;
  flushMark?: number;
}


/** Latency of one request in virtual ticks, drawn uniformly from [min, max]. */
export interface LatencyTicks { readMin: number; readMax: number; writeMin: number; writeMax: number; flushMin: number; flushMax: number }
export const DEFAULT_LATENCY: LatencyTicks = { readMin: 1, readMax: 4, writeMin: 1, writeMax: 4, flushMin: 2, flushMax: 6 };

/**
 * A fault the device injects: requests of `op` that overlap [sector, sector + sectors) fail with
 * -errno and move no data, for the next `times` matches (Infinity for every one).
 */
export interface FaultRule {
  op: "read" | "write" | "flush";
  sector?: number;
  sectors?: number;
  /** Positive errno; default 5 (EIO). */
  errno?: number;
  /** How many matching requests fail; default 1. */
  times?: number;
}

/** After this many pumps in a row without an event-loop turn, the next one takes a turn. */
const PUMPS_PER_TURN = 256;

/**
 * Schedules the device's pump off the caller's stack, once the CPU has nothing left to do: after
 * every promise job queued so far, and those they queue, have run (the device's virtual clock
 * moves only while the emulated CPU is idle, so requests submitted together are in flight
 * together). A macrotask (setImmediate) gives exactly that, at the cost of an event-loop turn,
 * about a microsecond, which would dominate a 4 KiB request. In Node the same point is reached
 * without a turn: a microtask that queues a nextTick callback; Node runs the nextTick queue once
 * the microtask queue is empty (nextTick callbacks queued before it run first). Every
 * PUMPS_PER_TURN pumps one still takes a turn, so timers, worker messages and I/O run under a
 * steady load. With completions "turn", and where there is no nextTick (a browser), every pump is
 * a task.
 */
function deviceScheduler(completions: "drain" | "turn", run: () => void): () => void {
  const macrotask = typeof setImmediate === "function" ? () => void setImmediate(run) : (() => {
    const channel = new MessageChannel();
    channel.port1.onmessage = run;
    return () => channel.port2.postMessage(null);
  })();
  const nextTick = typeof process === "object" && typeof process?.nextTick === "function" ? process.nextTick : undefined;
  if (completions === "turn" || nextTick === undefined || typeof setImmediate !== "function") return macrotask;
  // A promise job (not queueMicrotask, which wraps each callback in an async resource) that
  // queues the nextTick callback: it runs once the microtask queue is empty.
  const resolved = Promise.resolve();
  const tick = (): void => nextTick(run);
  let streak = 0;
  return () => {
    if (++streak >= PUMPS_PER_TURN) {
      streak = 0;
      macrotask();
      return;
    }
    void resolved.then(tick);
  };
}

/** Callbacks the device runs at each step (a set, kept as an array: a step runs them with no
 *  iterator). Each is added once; delete() of one absent is a no-op. */
class Hooks {
  private list: (() => void)[] = [];
  get size(): number {
    return this.list.length;
  }
  add(hook: () => void): void {
    if (!this.list.includes(hook)) this.list = [...this.list, hook];
  }
  delete(hook: () => void): void {
    this.list = this.list.filter((h) => h !== hook);
  }
  /** Runs each hook (one added or deleted meanwhile counts from the next run). */
  run(): void {
    const list = this.list;
    for (let i = 0; i < list.length; i++) list[i]();
  }
}

/** The device's request queue: dispatch, complete in due order, flush, power cut. */
export class Device {
  /** Device time in ticks. */
  now = 0;
  private readonly inflight: DeviceRequest[] = [];
  private readonly later: (() => void)[] = [];
  private order = 0;
  private pumpScheduled = false;
  /** A polled wait (poll()) is running the device's steps on its caller's stack. */
  private polling = false;
  /** A step is running (a polled wait may not start inside one). */
  private pumping = false;
  private flushing = false;
  /** Power cuts so far: a completion batch that sees this change fails what it has not completed. */
  private powerCycles = 0;
  private flushWaiters: ((status: number) => void)[] = [];
  /** Flushes on a device without a cache: they end at the next pump with no device operation,
   *  or with EIO if the power is cut first. */
  private cachelessFlushWaiters: ((status: number) => void)[] = [];
  private readonly schedule: () => void;
  /** @internal Called before each request takes effect at the device (and is then reported
   *  complete), while it is still in flight: crash tests' cut points. */
  beforeCompletion: ((request: DeviceRequest) => void) | undefined;
  /** Called when the device becomes idle (nothing in flight, nothing deferred). */
  onIdle: (() => void) | undefined;
  /** Faults still to inject, in the order they were added. */
  readonly faults: Required<FaultRule>[] = [];

  constructor(
    private readonly core: CoreExports,
    private readonly prng: Prng,
    private readonly tracer: Tracer,
    private readonly writeCache: boolean,
    private readonly latency: LatencyTicks = DEFAULT_LATENCY,
    completions: "drain" | "turn" = "drain",
  ) {
    this.schedule = deviceScheduler(completions, () => this.pump());
  }

  /** Requests dispatched and not yet completed. */
  get inflightCount(): number {
    return this.inflight.length;
  }

  get idle(): boolean {
    return this.inflight.length === 0 && this.later.length === 0 && this.cachelessFlushWaiters.length === 0;
  }

  /** Runs `callback` from the completion path (never on the caller's stack). */
  defer(callback: () => void): void {
    this.later.push(callback);
    this.kick();
  }

  /** Hands a request to the device (trace D); it completes after its latency. */
  dispatch(request: DeviceRequest): void {
    const flushMark = request.kind === "flush" ? this.core.dev_flush_mark() >>> 0 : 0;
    this.tracer.emit("D", request.kind, request.sector, request.sectors, request.flags, this.now);
    const latency = this.latency;
    const ticks = request.kind === "read" ? this.prng.between(latency.readMin, latency.readMax)
      : request.kind === "write" ? this.prng.between(latency.writeMin, latency.writeMax)
      : this.prng.between(latency.flushMin, latency.flushMax);
    request.dueTick = this.now + ticks;
    request.order = this.order++;
    request.flushMark = flushMark;
    this.inflight.push(request);
    this.kick();
  }

  /**
   * Asks for a cache flush. Without a volatile cache it completes with no device operation.
   * Requests that arrive while a flush is in flight are all served by the next one.
   * see: block/blk-flush.c
   */
  requestFlush(done: (status: number) => void): void {
    if (!this.writeCache) {
      this.cachelessFlushWaiters.push(done);
      this.kick();
      return;
    }
    this.flushWaiters.push(done);
    if (!this.flushing) this.startFlush();
  }

  private startFlush(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    this.flushing = true;
    this.dispatch({
      kind: "flush", sector: 0, sectors: 0, bvecIndex: 0, bvecDone: 0, fua: false, flags: [],
      done: (status) => {
        this.flushing = false;
        // Whoever arrived during this flush is served by a new one, issued now.
        if (this.flushWaiters.length > 0) this.startFlush();
        for (const waiter of waiters) waiter(status);
      },
    });
  }

  private kick(): void {
    // A polled wait steps the device itself; it schedules a step when it ends, if one is needed.
    if (this.pumpScheduled || this.polling) return;
    this.pumpScheduled = true;
    this.schedule();
  }

  /** @internal Called at each pump: work done on other threads is picked up without waiting
   *  for their message (the flush worker's served count). */
  readonly pollers = new Hooks();
  /** @internal Called when a pump leaves the device idle: another thread this one waits for (the
   *  flush worker) may be waited for here, briefly, as the block layer's hybrid polling does,
   *  rather than through an event-loop wake-up, which costs tens of microseconds. */
  readonly idlePollers = new Hooks();

  /** The requests of one completion batch (reused: a pump never runs inside another). */
  private readonly batch: (DeviceRequest | undefined)[] = [];
  private readonly statuses: number[] = [];

  /**
   * A polled wait (blk_poll(), as a RWF_HIPRI or IOPOLL caller spins for its completion rather
   * than sleeping): runs the device's steps on the caller's stack until `waiter.finished`. Each
   * step is the one the scheduler would run (the clock moves to the next due request, whose
   * batch completes), so requests other callers have in flight complete too, in their order.
   * Throws EDEADLK inside a step (a trace or cut-point callback), and when the device goes idle
   * before the waiter is done: what it waits for is not the device's to finish.
   */
  poll(waiter: { readonly finished: boolean }, syscall: string): void {
    this.checkPollable(syscall);
    this.polling = true;
    try {
      while (!waiter.finished) {
        if (this.idle) throw new DioError("EDEADLK", syscall, "a synchronous call waits for something the device will not complete (nothing is in flight)");
        // A step scheduled before (pumpScheduled) stays scheduled: it runs later and finds
        // nothing due, and meanwhile no submission schedules another.
        this.runStep();
      }
    } finally {
      this.polling = false;
      // Whatever is still in flight (other callers' requests) completes at the scheduled steps.
      if (!this.idle) this.kick();
    }
  }

  /** EDEADLK inside a step or a polled wait (a trace or cut-point callback): a synchronous call
   *  checks this before it does anything, so that it never leaves a request behind unwaited. */
  checkPollable(syscall: string): void {
    if (this.pumping || this.polling) {
      throw new DioError("EDEADLK", syscall, "a synchronous call cannot wait for the device from inside the device's own step (a trace or cut-point callback)");
    }
  }

  private pump(): void {
    this.pumpScheduled = false;
    this.runStep();
  }

  private runStep(): void {
    this.pumping = true;
    try {
      this.step();
    } finally {
      this.pumping = false;
    }
  }

  /** Moves the clock to the next due request and completes every request due by then. */
  private step(): void {
    if (this.pollers.size > 0) this.pollers.run();
    if (this.later.length > 0) {
      const deferred = this.later.splice(0);
      for (const callback of deferred) runReporting(callback);
    }
    if (this.cachelessFlushWaiters.length > 0) {
      const cacheless = this.cachelessFlushWaiters.splice(0);
      for (const waiter of cacheless) runReporting(() => waiter(0));
    }
    const inflight = this.inflight;
    if (inflight.length === 1 && this.beforeCompletion === undefined) {
      // One request in flight and no cut point armed: the batch below, of one, without its
      // bookkeeping (a synchronous caller's polled request, most often).
      const request = inflight.pop()!;
      this.now = request.dueTick!;
      const status = this.perform(request);
      this.tracer.emit("C", request.kind, request.sector, request.sectors, request.flags, this.now, status);
      completeReporting(request, status);
    } else if (inflight.length > 0) {
      // (Started from the first entry, not Infinity: tick values stay small integers, which V8
      // keeps unboxed in every request and in `now`.)
      let nextTick = inflight[0].dueTick!;
      for (const entry of inflight) if (entry.dueTick! < nextTick) nextTick = entry.dueTick!;
      this.now = nextTick;
      // The batch: every request due now, in dispatch order (all are due at the same tick).
      const ready = this.batch;
      let count = 0;
      for (const entry of inflight) if (entry.dueTick! <= nextTick) ready[count++] = entry;
      // Data moves for the whole batch first, then completions run: a completion that submits
      // more IO joins a later batch. Each request stays in flight until it takes effect, so a
      // crash test that cuts the power just before one (beforeCompletion) finds it, and those
      // after it, still in flight: the power cut decides what of them reached the media, and
      // fails them. A flush cut there has made nothing durable.
      const cycle = this.powerCycles;
      const statuses = this.statuses;
      try {
        let performed = 0;
        if (this.beforeCompletion === undefined) {
          // Nothing can cut the power between the batch's requests (no cut point is armed, and
          // performing runs no other code): they leave the in-flight list together, in one pass.
          let kept = 0;
          for (const entry of inflight) if (entry.dueTick! > nextTick) inflight[kept++] = entry;
          inflight.length = kept;
          for (; performed < count; performed++) statuses[performed] = this.perform(ready[performed]!);
        }
        for (; performed < count; performed++) {
          const entry = ready[performed]!;
          this.beforeCompletion?.(entry);
          if (this.powerCycles !== cycle) break;
          const at = inflight.indexOf(entry);
          if (at === inflight.length - 1) inflight.pop();
          else inflight.splice(at, 1);
          statuses[performed] = this.perform(entry);
        }
        for (let i = 0; i < performed; i++) {
          const request = ready[i]!;
          // A completion earlier in this batch may have cut the power: what was not yet reported
          // complete was in flight at the cut, and its data may be gone with the cache.
          const reported = this.powerCycles === cycle ? statuses[i] : -ERRNO.EIO;
          this.tracer.emit("C", request.kind, request.sector, request.sectors, request.flags, this.now, reported);
          completeReporting(request, reported);
        }
      } finally {
        // Nothing stays referenced from the reused batch.
        for (let i = 0; i < count; i++) ready[i] = undefined;
      }
    }
    if (!this.idle) {
      this.kick();
    } else {
      if (this.idlePollers.size > 0) this.idlePollers.run();
      this.onIdle?.();
    }
  }

  /** A flush run elsewhere (the flush worker) shows in the trace as this device's flushes do. */
  traceFlush(action: "Q" | "D" | "C", status: number): void {
    this.tracer.emit(action, "flush", 0, 0, [], this.now, action === "C" ? status : undefined);
  }

  /** The -errno a fault rule injects into the next flush (using one of its times), or 0. */
  takeFlushFault(): number {
    return this.injectedFault({ kind: "flush", sector: 0, sectors: 0, bvecIndex: 0, bvecDone: 0, fua: false, flags: [], done: () => undefined });
  }

  /** The -errno of the first fault rule that matches `request` (using one of its times), or 0. */
  private injectedFault(request: DeviceRequest): number {
    if (this.faults.length === 0) return 0;
    const index = this.faults.findIndex((rule) => rule.op === request.kind && (request.kind === "flush" ||
      (request.sector < rule.sector + rule.sectors && rule.sector < request.sector + request.sectors)));
    if (index < 0) return 0;
    const rule = this.faults[index];
    if (--rule.times <= 0) this.faults.splice(index, 1);
    return -rule.errno;
  }

  private perform(request: DeviceRequest): number {
    const fault = this.injectedFault(request);
    if (fault !== 0) return fault;
    switch (request.kind) {
      case "write":
        return this.core.dev_write(request.sector, request.sectors, request.bvecIndex, request.bvecDone, request.fua ? 1 : 0);
      case "read":
        return this.core.dev_read(request.sector, request.sectors, request.bvecIndex, request.bvecDone);
      case "flush":
        this.core.dev_flush_commit(request.flushMark!);
        return 0;
    }
  }

  /**
   * A power cut. Cached writes and writes in flight reach the media or not, by the seed (whole
   * writes, or sector by sector when `torn`); every request in flight then fails with -EIO.
   */
  powerCut(seed: number, torn: boolean): void {
    this.powerCycles++;
    this.core.dev_crash_cache(seed >>> 0, torn ? 1 : 0);
    const lost = this.inflight.splice(0);
    for (const request of lost) {
      if (request.kind === "write") {
        this.core.dev_crash_inflight(request.sector, request.sectors, request.bvecIndex, request.bvecDone, seed >>> 0, torn ? 1 : 0);
      }
    }
    this.flushing = false;
    const waiters = [...this.flushWaiters.splice(0), ...this.cachelessFlushWaiters.splice(0)];
    for (const request of lost) {
      this.defer(() => {
        this.tracer.emit("C", request.kind, request.sector, request.sectors, request.flags, this.now, -ERRNO.EIO);
        request.done(-ERRNO.EIO);
      });
    }
    for (const waiter of waiters) this.defer(() => waiter(-ERRNO.EIO));
  }
}

/**
 * Runs a completion from the device's step. One that throws is a bug above the device: it
 * surfaces (thrown again from a microtask, as an uncaught exception), and the rest of the step
 * still runs, so no other request is left without its completion.
 */
function runReporting(callback: () => void): void {
  try {
    callback();
  } catch (error) {
    queueMicrotask(() => { throw error; });
  }
}

/** runReporting() of a request's completion, without a closure per request. */
function completeReporting(request: DeviceRequest, status: number): void {
  try {
    request.done(status);
  } catch (error) {
    queueMicrotask(() => { throw error; });
  }
}
