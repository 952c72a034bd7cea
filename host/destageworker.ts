// The destager's Worker thread (see destager.ts). It runs its own instance of the core over the
// disk's shared memory and writes back the cache entries the device released, a claimed run at a
// time (copied outside the device lock); it also takes half of a large copy to the media when the
// submitting thread posts one (assembly/device.ts, "sharing a large copy"). With nothing to do it
// stays awake a moment (large writes tend to come one after another, and a wake-up costs more
// than a share saves), then sleeps on the bell until rung. It stops when asked.
import { instantiateCore } from "./core.js";
import { bootCoreWorker, type CoreWorkerStart } from "./workerboot.js";
import { DESTAGE_WORDS } from "./destager.js";

/** Entries claimed and written back at a time (the longest another thread may wait for them). */
const RUN = 64;
/** dev_destage_pending()'s bits (assembly/device.ts). */
const PENDING_RELEASED = 1;
const PENDING_SHARE = 2;
/** How long the thread stays awake after its last share, in milliseconds (after write-back work
 *  it sleeps at once, as the flush thread may need the core). */
const AWAKE_MS = 0.5;

async function run(start: CoreWorkerStart, post: (message: unknown) => void): Promise<void> {
  const core = await instantiateCore(start.memory);
  if (core.core_attach() !== 0) throw new Error("dioemu destager: the disk's control block is not initialised");
  const words = new Int32Array(start.memory.buffer, start.controlOffset, DESTAGE_WORDS.SHARE_WAKE + 1);
  Atomics.store(words, DESTAGE_WORDS.SHARE_READY, 1);
  post("ready");
  let lastShare = -Infinity;
  for (;;) {
    // The bell is read before the work is looked at: a release rung after this read changes it,
    // so the wait below returns at once instead of sleeping through it.
    const bell = Atomics.load(words, DESTAGE_WORDS.BELL);
    if (Atomics.load(words, DESTAGE_WORDS.STOP) !== 0) break;
    // A share first: the submitting thread waits for it.
    if (core.dev_share_take()) {
      lastShare = performance.now();
      continue;
    }
    const pending = core.dev_destage_pending();
    // A share posted since: join it (write-back would spin on the lock its poster holds).
    if ((pending & PENDING_SHARE) !== 0) continue;
    if ((pending & PENDING_RELEASED) !== 0) {
      core.dev_destage_claimed(RUN);
      continue;
    }
    // Awake a moment longer after a share, looking without the lock.
    if (performance.now() - lastShare < AWAKE_MS) continue;
    // Say so before sleeping, then look once more: work posted before the other side read
    // SLEEPING shows now; work posted after it comes with a notify (and a new bell value).
    Atomics.store(words, DESTAGE_WORDS.SLEEPING, 1);
    if (core.dev_destage_pending() === 0 && Atomics.load(words, DESTAGE_WORDS.STOP) === 0) {
      Atomics.wait(words, DESTAGE_WORDS.BELL, bell);
    }
    Atomics.store(words, DESTAGE_WORDS.SLEEPING, 0);
    // Woken for a share: stay awake for the ones that follow.
    if (Atomics.exchange(words, DESTAGE_WORDS.SHARE_WAKE, 0) !== 0) lastShare = performance.now();
  }
  Atomics.store(words, DESTAGE_WORDS.SHARE_READY, 0);
}

await bootCoreWorker("destager", run);
