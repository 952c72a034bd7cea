// The flush queue's Worker thread ("worker" executor, see workqueue.ts). It runs its own instance
// of the core over the disk's shared memory and waits on the doorbell word; when woken it serves
// every flush request made so far with one cache flush (mark, then destage, under the device lock)
// and reports how many it served. It stops when asked, after the queue has drained.
import { instantiateCore } from "./core.js";
import { bootCoreWorker, type CoreWorkerStart } from "./workerboot.js";
import { FLUSH_WORDS } from "./workqueue.js";

/** About 50-100 microseconds of polling on these machines. */
const SPINS_BEFORE_WAIT = 20000;

async function run(start: CoreWorkerStart, post: (message: unknown) => void): Promise<void> {
  const core = await instantiateCore(start.memory);
  if (core.core_attach() !== 0) throw new Error("dioemu flush worker: the disk's control block is not initialised");
  const words = new Int32Array(start.memory.buffer, start.controlOffset, 16);
  post("ready");
  let served = 0;
  for (;;) {
    // The doorbell is read before anything is checked: a request or a stop that comes after this
    // read changes it, so the wait below returns at once instead of sleeping through it.
    const bell = Atomics.load(words, FLUSH_WORDS.DOORBELL);
    if (Atomics.load(words, FLUSH_WORDS.STOP) !== 0) break;
    let requested = Atomics.load(words, FLUSH_WORDS.REQUESTED);
    // A busy queue asks again within microseconds: spin a little before sleeping, since a wake
    // through Atomics.wait/notify costs tens of microseconds.
    for (let spins = 0; requested === served && spins < SPINS_BEFORE_WAIT; spins++) {
      if ((spins & 255) === 0 && Atomics.load(words, FLUSH_WORDS.STOP) !== 0) break;
      requested = Atomics.load(words, FLUSH_WORDS.REQUESTED);
    }
    if (requested === served) {
      // Say so before sleeping, then look once more: a request made before the other side read
      // SLEEPING shows in REQUESTED now; one made after it comes with a notify.
      Atomics.store(words, FLUSH_WORDS.SLEEPING, 1);
      if (Atomics.load(words, FLUSH_WORDS.REQUESTED) === served && Atomics.load(words, FLUSH_WORDS.STOP) === 0) {
        Atomics.wait(words, FLUSH_WORDS.DOORBELL, bell);
      }
      Atomics.store(words, FLUSH_WORDS.SLEEPING, 0);
      continue;
    }
    // Every request numbered up to `requested` was made after the writes it must cover had
    // completed, so a flush marked now covers them all. An ordered queue gets one flush per
    // request, one after the other: issued back to back here, with nothing completing between
    // them, they cover the same writes, so one mark and one commit serve the run, counted once
    // per request (the first flush does the work; the others would find nothing new).
    const count = Atomics.load(words, FLUSH_WORDS.ORDERED) !== 0 ? requested - served : 1;
    core.dev_flush_commit(core.dev_flush_marks(count));
    Atomics.add(words, FLUSH_WORDS.FLUSHES, count);
    served = requested;
    Atomics.store(words, FLUSH_WORDS.SERVED, served);
    // Wakes a waitAsync() on the other side (the fast path), then the message (the fallback).
    Atomics.notify(words, FLUSH_WORDS.SERVED);
    post(served);
  }
}

await bootCoreWorker("flush worker", run);
