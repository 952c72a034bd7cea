// The destager's Worker thread (see destager.ts). It runs its own instance of the core over the
// disk's shared memory and writes back the cache entries the device released, a claimed run at a
// time (copied outside the device lock), then sleeps on the bell until the host rings it for the
// next release. It stops when asked.
import { instantiateCore } from "./core.js";
import { bootCoreWorker, type CoreWorkerStart } from "./workerboot.js";
import { DESTAGE_WORDS } from "./destager.js";

/** Entries claimed and written back at a time (the longest another thread may wait for them). */
const RUN = 64;

async function run(start: CoreWorkerStart, post: (message: unknown) => void): Promise<void> {
  const core = await instantiateCore(start.memory);
  if (core.core_attach() !== 0) throw new Error("dioemu destager: the disk's control block is not initialised");
  const words = new Int32Array(start.memory.buffer, start.controlOffset, DESTAGE_WORDS.SLEEPING + 1);
  post("ready");
  for (;;) {
    // The bell is read before the work is looked at: a release rung after this read changes it,
    // so the wait below returns at once instead of sleeping through it.
    const bell = Atomics.load(words, DESTAGE_WORDS.BELL);
    if (Atomics.load(words, DESTAGE_WORDS.STOP) !== 0) break;
    if (core.dev_destage_claimed(RUN) > 0) continue;
    // Say so before sleeping, then look once more: a release made before the other side read
    // SLEEPING shows now; one made after it comes with a notify (and a new bell value).
    Atomics.store(words, DESTAGE_WORDS.SLEEPING, 1);
    if (core.dev_destage_released(0) === 0 && Atomics.load(words, DESTAGE_WORDS.STOP) === 0) {
      Atomics.wait(words, DESTAGE_WORDS.BELL, bell);
    }
    Atomics.store(words, DESTAGE_WORDS.SLEEPING, 0);
  }
}

await bootCoreWorker("destager", run);
