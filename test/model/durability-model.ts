// The durability oracle: a plain, slow model of the device contract (spec 6.2, DESIGN "The device
// and durability"), written from the rules, not from the emulator. It records what a test did and
// saw, in order, and answers which version each 512-byte sector may hold, now or after a power cut.
//
// Vocabulary. Every write bio has an id; a sector's "version" is the id of the write whose data it
// holds, or INITIAL (0) for the contents before any write. Events get increasing timestamps in the
// order the test observed them (submission = the submitBio call, completion = the endIo call).
// A write A "happens before" a write B when A completed before B was submitted; writes that
// overlapped in time are unordered, and the device may have applied them in either order.
//
// The rules:
// - A write completes into the volatile cache (if the disk has one); reads see the newest data.
// - A flush (a flush bio, or the PREFLUSH of a write bio) makes durable, when it completes, every
//   write that had completed before the flush was submitted; writes in flight then are not covered.
// - A FUA write is durable when it completes (its own data). Without a cache, every write is.
// - After a power cut, a sector holds a version that no durable write of that sector happens after:
//   the newest durable version (the "floor") or any version written later, never an older one.

/** The version of a sector that no write has touched (the initial contents). */
export const INITIAL = 0;

/** The flags of a write bio that matter for durability. */
export interface WriteFlags {
  fua?: boolean;
  preflush?: boolean;
}

/** One write bio, as the model saw it. */
export interface WriteRecord {
  id: number;
  sector: number;
  sectors: number;
  fua: boolean;
  preflush: boolean;
  submittedAt: number;
  /** Infinity until endIo is seen. */
  completedAt: number;
  /** Undefined until endIo is seen. */
  status?: number;
}

/** One flush (a flush bio, or the preflush of a write bio carrying PREFLUSH). */
interface FlushRecord {
  id: number;
  submittedAt: number;
  completedAt: number;
  status?: number;
  /** "flush" for a flush bio, "preflush" for the PREFLUSH of write `id`. */
  kind: "flush" | "preflush";
}

interface ReadRecord {
  id: number;
  sector: number;
  sectors: number;
  submittedAt: number;
  completedAt: number;
  status?: number;
}

type Event = { at: number; text: string };

/** The oracle. Construct one per disk; feed it every submission and completion in order. */
export class DurabilityModel {
  private readonly writeCache: boolean;
  private clock = 0;
  private readonly writes = new Map<number, WriteRecord>();
  private readonly flushes = new Map<number, FlushRecord>();
  private readonly reads = new Map<number, ReadRecord>();
  /** Per sector, the writes that touch it, in submission order. */
  private readonly bySector = new Map<number, WriteRecord[]>();
  private readonly events: Event[] = [];
  private crashAt = Infinity;

  constructor(opts: { writeCache: boolean }) {
    this.writeCache = opts.writeCache;
  }

  private tick(text: string): number {
    this.clock++;
    this.events.push({ at: this.clock, text });
    return this.clock;
  }

  // ---- recording ---------------------------------------------------------------------------

  /** A write bio was submitted. `id` must be unique among all bios and not INITIAL. */
  writeSubmitted(id: number, sector: number, sectors: number, flags: WriteFlags = {}): void {
    if (id === INITIAL || this.writes.has(id) || this.flushes.has(id) || this.reads.has(id)) {
      throw new Error(`model: bio id ${id} is reserved or already used`);
    }
    if (!Number.isInteger(sector) || sector < 0 || !Number.isInteger(sectors) || sectors <= 0) {
      throw new Error(`model: write ${id} has a bad range ${sector}+${sectors}`);
    }
    const fua = flags.fua === true;
    const preflush = flags.preflush === true;
    const text = `submit write w${id} ${sector}+${sectors}${fua ? " FUA" : ""}${preflush ? " PREFLUSH" : ""}`;
    const record: WriteRecord = { id, sector, sectors, fua, preflush, submittedAt: this.tick(text), completedAt: Infinity };
    this.writes.set(id, record);
    for (let s = sector; s < sector + sectors; s++) {
      let list = this.bySector.get(s);
      if (list === undefined) this.bySector.set(s, (list = []));
      list.push(record);
    }
    if (preflush) {
      // The preflush is submitted with the bio and, if the bio succeeds, completed before it.
      this.flushes.set(-id, { id: -id, submittedAt: record.submittedAt, completedAt: Infinity, kind: "preflush" });
    }
  }

  /** A write bio's endIo ran with `status`. */
  writeCompleted(id: number, status: number): void {
    const record = this.writes.get(id);
    if (record === undefined) throw new Error(`model: write ${id} completed but was never submitted`);
    if (record.status !== undefined) throw new Error(`model: write ${id} completed twice`);
    record.completedAt = this.tick(`complete write w${id} status ${status}`);
    record.status = status;
    const preflush = this.flushes.get(-id);
    if (preflush !== undefined) {
      // A bio that succeeded had its preflush succeed before its data was written.
      preflush.completedAt = record.completedAt;
      preflush.status = status;
    }
  }

  /** A flush bio was submitted. */
  flushSubmitted(id: number): void {
    if (id === INITIAL || id < 0 || this.writes.has(id) || this.flushes.has(id) || this.reads.has(id)) {
      throw new Error(`model: bio id ${id} is reserved or already used`);
    }
    this.flushes.set(id, { id, submittedAt: this.tick(`submit flush f${id}`), completedAt: Infinity, kind: "flush" });
  }

  /** A flush bio's endIo ran with `status`. */
  flushCompleted(id: number, status: number): void {
    const record = this.flushes.get(id);
    if (record === undefined || record.kind !== "flush") throw new Error(`model: flush ${id} completed but was never submitted`);
    if (record.status !== undefined) throw new Error(`model: flush ${id} completed twice`);
    record.completedAt = this.tick(`complete flush f${id} status ${status}`);
    record.status = status;
  }

  /** A read bio was submitted. */
  readSubmitted(id: number, sector: number, sectors: number): void {
    if (id === INITIAL || this.writes.has(id) || this.flushes.has(id) || this.reads.has(id)) {
      throw new Error(`model: bio id ${id} is reserved or already used`);
    }
    this.reads.set(id, { id, sector, sectors, submittedAt: this.tick(`submit read r${id} ${sector}+${sectors}`), completedAt: Infinity });
  }

  /** A read bio's endIo ran with `status`. */
  readCompleted(id: number, status: number): void {
    const record = this.reads.get(id);
    if (record === undefined) throw new Error(`model: read ${id} completed but was never submitted`);
    record.completedAt = this.tick(`complete read r${id} status ${status}`);
    record.status = status;
  }

  /** The power was cut. Completions seen afterwards make nothing durable. */
  powerCut(torn: boolean): void {
    if (this.crashAt !== Infinity) throw new Error("model: one power cut per model");
    this.crashAt = this.tick(`POWER CUT${torn ? " (torn)" : ""}`);
  }

  // ---- the rules -------------------------------------------------------------------------------

  /** True when `a` completed before `b` was submitted: b's data replaced a's wherever both wrote. */
  private happensBefore(a: WriteRecord, b: WriteRecord): boolean {
    return a.completedAt < b.submittedAt;
  }

  /** True when the write or flush completed successfully before the power cut. */
  private succeededBeforeCut(record: { completedAt: number; status?: number }): boolean {
    return record.status === 0 && record.completedAt < this.crashAt;
  }

  /**
   * Why write `id` must be durable (a sentence), or undefined when no rule makes it durable.
   * Durable means: its data, or data of a write that happens after it, must survive a power cut.
   */
  durableReason(id: number): string | undefined {
    const write = this.writes.get(id);
    if (write === undefined) throw new Error(`model: no write ${id}`);
    if (!this.succeededBeforeCut(write)) return undefined;
    if (!this.writeCache) return `w${id} completed (event ${write.completedAt}) on a disk without a volatile cache`;
    if (write.fua) return `w${id} is a FUA write that completed (event ${write.completedAt})`;
    for (const flush of this.flushes.values()) {
      if (!this.succeededBeforeCut(flush)) continue;
      if (write.completedAt < flush.submittedAt) {
        const what = flush.kind === "flush" ? `flush f${flush.id}` : `the PREFLUSH of w${-flush.id}`;
        return `w${id} completed (event ${write.completedAt}) before ${what} was submitted (event ${flush.submittedAt}), and that completed (event ${flush.completedAt})`;
      }
    }
    return undefined;
  }

  /** The writes that touch `sector`, submitted before the power cut, in submission order. */
  writesAt(sector: number): readonly WriteRecord[] {
    return (this.bySector.get(sector) ?? []).filter((write) => write.submittedAt < this.crashAt);
  }

  /** A write record, for messages and checks. */
  write(id: number): WriteRecord | undefined {
    return this.writes.get(id);
  }

  /**
   * Why `version` may not be in `sector` after the power cut, or undefined when it may.
   * A version is allowed when it is INITIAL or a write of this sector, and no durable write of
   * this sector happens after it (that write, or a later one, must have replaced it).
   */
  crashViolation(sector: number, version: number): string | undefined {
    if (this.crashAt === Infinity) throw new Error("model: ask about a crash only after powerCut()");
    const candidates = this.writesAt(sector);
    const write = version === INITIAL ? undefined : this.writes.get(version);
    if (version !== INITIAL && (write === undefined || !candidates.includes(write))) {
      return `sector ${sector} holds data of w${version}, which never wrote that sector before the power cut`;
    }
    for (const later of candidates) {
      if (later === write) continue;
      if (write !== undefined && !this.happensBefore(write, later)) continue;
      const reason = this.durableReason(later.id);
      if (reason === undefined) continue;
      const what = version === INITIAL ? "its initial contents" : `w${version}`;
      return `sector ${sector} holds ${what}, but ${reason}, so w${later.id} (or a newer write) must have survived there`;
    }
    return undefined;
  }

  /** Every version `sector` may hold after the power cut. */
  allowedAfterCrash(sector: number): Set<number> {
    const allowed = new Set<number>();
    for (const version of [INITIAL, ...this.writesAt(sector).map((write) => write.id)]) {
      if (this.crashViolation(sector, version) === undefined) allowed.add(version);
    }
    return allowed;
  }

  /** The writes that had not completed when the power was cut. */
  inFlightAtCrash(): WriteRecord[] {
    return [...this.writes.values()].filter((write) => write.submittedAt < this.crashAt && !(write.completedAt < this.crashAt));
  }

  /** The flushes (bios) that had not completed when the power was cut. */
  flushesInFlightAtCrash(): number[] {
    return [...this.flushes.values()]
      .filter((flush) => flush.kind === "flush" && flush.submittedAt < this.crashAt && !(flush.completedAt < this.crashAt))
      .map((flush) => flush.id);
  }

  /**
   * The sectors of `id` in [sector, sector+sectors) that no other write unordered with it
   * touches: there, whether `id` landed shows directly in the sector's version.
   */
  exclusiveSectors(id: number, sector: number, sectors: number): number[] {
    const write = this.writes.get(id);
    if (write === undefined) throw new Error(`model: no write ${id}`);
    const result: number[] = [];
    for (let s = sector; s < sector + sectors; s++) {
      const others = this.writesAt(s).filter((other) => other !== write && !this.happensBefore(other, write));
      if (others.length === 0) result.push(s);
    }
    return result;
  }

  /**
   * Why a successful read `readId` may not have returned `version` for `sector`, or undefined when
   * it may. Reads see the newest completed data: a version is allowed when its write was submitted
   * before the read completed, and no write of the sector that completed before the read was
   * submitted happens after it. INITIAL is allowed while no write of the sector had completed.
   */
  readViolation(readId: number, sector: number, version: number): string | undefined {
    const read = this.reads.get(readId);
    if (read === undefined) throw new Error(`model: no read ${readId}`);
    const candidates = this.bySector.get(sector) ?? [];
    const write = version === INITIAL ? undefined : this.writes.get(version);
    if (version !== INITIAL) {
      if (write === undefined || !candidates.includes(write)) {
        return `read r${readId} saw data of w${version} in sector ${sector}, which that write does not cover`;
      }
      if (!(write.submittedAt < read.completedAt)) {
        return `read r${readId} saw w${version} in sector ${sector}, submitted after the read completed`;
      }
    }
    for (const newer of candidates) {
      if (newer === write || !(newer.completedAt < read.submittedAt)) continue;
      if (write !== undefined && !this.happensBefore(write, newer)) continue;
      const what = version === INITIAL ? "the initial contents" : `w${version}`;
      return `read r${readId} (submitted event ${read.submittedAt}) saw ${what} in sector ${sector}, but w${newer.id} replaced it and completed first (event ${newer.completedAt})`;
    }
    return undefined;
  }

  /** The history, one event a line, for failure messages. */
  history(): string {
    return this.events.map((event) => `  #${event.at} ${event.text}`).join("\n");
  }
}
