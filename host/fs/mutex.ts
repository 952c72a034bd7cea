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

  /** tryLock() without a releaser to allocate: true when the lock was free and is now held, by a
   *  caller that lets go of it with release(), once. */
  tryAcquire(): boolean {
    if (this.held) return false;
    this.held = true;
    return true;
  }

  /** Lets go of a lock taken with tryAcquire(). */
  release(): void {
    if (!this.held) throw new Error("dioemu: a mutex released while not held");
    const next = this.waiters.shift();
    // Hand the lock straight to the next waiter, so that no one can slip in between.
    if (next !== undefined) next();
    else this.held = false;
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.release();
    };
  }

  /** Runs `fn` holding the lock; when the lock is free, `fn` starts before this returns. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const unlock = this.tryLock();
    if (unlock === null) return this.lock().then((u) => holding(fn, u));
    return holding(fn, unlock);
  }
}

function holding<T>(fn: () => Promise<T>, unlock: () => void): Promise<T> {
  let running: Promise<T>;
  try {
    running = fn();
  } catch (error) {
    unlock();
    return Promise.reject(error);
  }
  return running.then((value) => {
    unlock();
    return value;
  }, (error: unknown) => {
    unlock();
    throw error;
  });
}
