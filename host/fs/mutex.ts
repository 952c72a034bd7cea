// An async mutex: the inode lock (i_mutex / i_rwsem) and the commit lock. FIFO, never re-entrant.

/** Waiters are served in arrival order; lock() resolves with the function that releases it. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private held = false;

  get locked(): boolean {
    return this.held;
  }

  lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => { release = resolve; });
    const previous = this.tail;
    this.tail = previous.then(() => next);
    return previous.then(() => {
      this.held = true;
      return () => {
        this.held = false;
        release();
      };
    });
  }

  /** Runs `fn` holding the lock. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const unlock = await this.lock();
    try {
      return await fn();
    } finally {
      unlock();
    }
  }
}
