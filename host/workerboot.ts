// The start of a worker script that runs its own instance of the core over a disk's memory (the
// flush worker, the destager): in Node from workerData, in a browser from its first message. The
// browser side posts "exit" when `run` returns, since a page learns of a worker's end no other way.

/** What the thread that spawns a core worker hands it (spawnCoreWorker in workqueue.ts). */
export interface CoreWorkerStart { memory: WebAssembly.Memory; controlOffset: number }

/** Runs `run` in this worker with what its spawner handed over; `post` messages the spawner. */
export async function bootCoreWorker(
  name: string, run: (start: CoreWorkerStart, post: (message: unknown) => void) => Promise<void>,
): Promise<void> {
  const inNode = typeof process !== "undefined" && process.versions?.node !== undefined;
  if (inNode) {
    const { parentPort, workerData } = await import("node:worker_threads");
    if (parentPort === null) throw new Error(`dioemu ${name}: not started as a worker thread`);
    await run(workerData as CoreWorkerStart, (m) => parentPort.postMessage(m));
    return;
  }
  const scope = globalThis as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void };
  scope.onmessage = (e: MessageEvent) => {
    scope.onmessage = null;
    void run(e.data as CoreWorkerStart, (m) => scope.postMessage(m)).then(() => scope.postMessage("exit"));
  };
}
