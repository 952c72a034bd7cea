// An async mutex: the inode lock (i_mutex / i_rwsem) and the commit lock. FIFO, never re-entrant.

/** Waiters are served in arrival order; lock() resolves with the function that releases it. */
export class Mutex {
  private held = false;
  private readonly waiters: (() => void)[] = [];

  get locked(): boolean {
    return this.held;
  }

  lock(): Promise<() => void> {
    if (!this.held) {
      this.held = true;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => this.waiters.push(() => resolve(this.releaser())));
  }

  /** Takes the lock only if it is free right now (mutex_trylock); null otherwise. */
  tryLock(): (() => void) | null {
    if (this.held) return null;
    this.held = true;
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      // Hand the lock straight to the next waiter, so that no one can slip in between.
      if (next !== undefined) next();
      else this.held = false;
    };
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
