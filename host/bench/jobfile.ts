// fio job files: the subset of fio's dialect that `dioemu bench` runs. see: fio's HOWTO, "Job file
// format" and "Job file parameters".
//
// A file is a sequence of sections, `[global]` or `[jobname]`, each a list of `key=value` lines or
// bare flags (`time_based`); `#` and `;` start comments. `[global]` options apply to the jobs that
// follow it. Sizes take fio's suffixes with base 1024 (`4k` = 4096, `1m`, `1g`; `kib`/`mib` too);
// times take `us`, `ms`, `s` (the default), `m`, `h`. Anything else is refused with the file, line
// and option named.

export type RwPattern = "read" | "write" | "randread" | "randwrite" | "readwrite" | "randrw";

/** One job, with every option resolved (fio's defaults where the file says nothing). */
export interface JobSpec {
  name: string;
  rw: RwPattern;
  /** Percentage of reads in a mixed job (readwrite, randrw). */
  rwmixread: number;
  bs: number;
  /** Bytes of IO per job; also the size of the file it lays out. */
  size: number;
  iodepth: number;
  direct: boolean;
  /** O_SYNC (`sync=1` / `sync=sync`) or O_DSYNC (`sync=dsync`) or neither. */
  sync: "none" | "sync" | "dsync";
  /** fsync every N writes (0: never); fdatasync likewise. */
  fsync: number;
  fdatasync: number;
  ioengine: "libaio" | "psync" | "sync";
  numjobs: number;
  /** Seconds; 0 is no limit. */
  runtime: number;
  time_based: boolean;
  verify: "none" | "crc32c";
  randseed: number;
  /** A file in the emulated filesystem, or "/dev/dioemu" for the raw device. */
  filename: string;
  /** The file and line the job starts at, for messages. */
  where: string;
}

export class JobFileError extends Error {
  constructor(readonly file: string, readonly line: number, message: string) {
    super(`${file}:${line}: ${message}`);
  }
}

/** The largest `size` a job may have: its disk must fit in one wasm32 memory with the rest. */
export const SIZE_MAX = 2560 * 2 ** 20;
/** The most bytes of IO buffers in flight (iodepth x bs). */
export const BUFFERS_MAX = 32 << 20;

/** The raw device's name in `filename=`. */
export const RAW_DEVICE = "/dev/dioemu";

const DEFAULTS: Omit<JobSpec, "name" | "where"> = {
  rw: "read", rwmixread: 50, bs: 4096, size: 16 << 20, iodepth: 1, direct: false, sync: "none", fsync: 0, fdatasync: 0,
  ioengine: "psync", numjobs: 1, runtime: 0, time_based: false, verify: "none", randseed: 0x89, filename: "",
};

const SIZE_UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20, g: 1 << 30, gb: 1 << 30, gib: 1 << 30 };
const TIME_UNITS: Record<string, number> = { us: 1e-6, ms: 1e-3, "": 1, s: 1, m: 60, h: 3600 };

type Setter = (spec: Partial<JobSpec>, value: string | undefined, fail: (message: string) => never) => void;

function needValue(value: string | undefined, fail: (message: string) => never, key: string): string {
  if (value === undefined || value === "") fail(`option ${key} needs a value`);
  return value!;
}

function parseSize(value: string, fail: (message: string) => never, key: string): number {
  const m = /^(\d+)([a-z]*)$/i.exec(value.trim());
  const unit = m === null ? undefined : SIZE_UNITS[m[2].toLowerCase()];
  if (m === null || unit === undefined) fail(`${key}=${value} is not a size (a number with an optional k, m or g suffix)`);
  const bytes = Number(m![1]) * unit!;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) fail(`${key}=${value} must be a positive size`);
  return bytes;
}

function parseInteger(value: string, fail: (message: string) => never, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(value.trim())) fail(`${key}=${value} is not a whole number`);
  const n = Number(value);
  if (n < min || n > max) fail(`${key}=${value} must be between ${min} and ${max}`);
  return n;
}

function parseBool(value: string | undefined, fail: (message: string) => never, key: string): boolean {
  if (value === undefined || value === "1" || value === "true") return true;
  if (value === "0" || value === "false") return false;
  return fail(`${key}=${value} must be 0 or 1`);
}

const OPTIONS: Record<string, Setter> = {
  rw: (s, v, fail) => {
    const value = needValue(v, fail, "rw");
    const aliases: Record<string, RwPattern> = { read: "read", write: "write", randread: "randread", randwrite: "randwrite", readwrite: "readwrite", rw: "readwrite", randrw: "randrw" };
    if (aliases[value] === undefined) fail(`rw=${value} is not one of read, write, randread, randwrite, readwrite (rw), randrw`);
    s.rw = aliases[value];
  },
  readwrite: (s, v, fail) => OPTIONS.rw(s, v, fail),
  rwmixread: (s, v, fail) => { s.rwmixread = parseInteger(needValue(v, fail, "rwmixread"), fail, "rwmixread", 0, 100); },
  rwmixwrite: (s, v, fail) => { s.rwmixread = 100 - parseInteger(needValue(v, fail, "rwmixwrite"), fail, "rwmixwrite", 0, 100); },
  bs: (s, v, fail) => { s.bs = parseSize(needValue(v, fail, "bs"), fail, "bs"); },
  blocksize: (s, v, fail) => OPTIONS.bs(s, v, fail),
  size: (s, v, fail) => { s.size = parseSize(needValue(v, fail, "size"), fail, "size"); },
  iodepth: (s, v, fail) => { s.iodepth = parseInteger(needValue(v, fail, "iodepth"), fail, "iodepth", 1, 4096); },
  direct: (s, v, fail) => { s.direct = parseBool(v, fail, "direct"); },
  buffered: (s, v, fail) => { s.direct = !parseBool(v, fail, "buffered"); },
  sync: (s, v, fail) => {
    const value = v ?? "1";
    if (value === "0" || value === "none") s.sync = "none";
    else if (value === "1" || value === "sync") s.sync = "sync";
    else if (value === "dsync") s.sync = "dsync";
    else fail(`sync=${value} must be 0, 1, sync or dsync`);
  },
  fsync: (s, v, fail) => { s.fsync = parseInteger(needValue(v, fail, "fsync"), fail, "fsync", 0); },
  fdatasync: (s, v, fail) => { s.fdatasync = parseInteger(needValue(v, fail, "fdatasync"), fail, "fdatasync", 0); },
  ioengine: (s, v, fail) => {
    const value = needValue(v, fail, "ioengine");
    if (value !== "libaio" && value !== "psync" && value !== "sync") fail(`ioengine=${value} is not one of libaio, psync, sync`);
    s.ioengine = value as JobSpec["ioengine"];
  },
  numjobs: (s, v, fail) => { s.numjobs = parseInteger(needValue(v, fail, "numjobs"), fail, "numjobs", 1, 64); },
  runtime: (s, v, fail) => {
    const value = needValue(v, fail, "runtime");
    const m = /^(\d+(?:\.\d+)?)([a-z]*)$/i.exec(value.trim());
    const unit = m === null ? undefined : TIME_UNITS[m[2].toLowerCase()];
    if (m === null || unit === undefined) fail(`runtime=${value} is not a time (a number with an optional us, ms, s, m or h suffix)`);
    s.runtime = Number(m![1]) * unit!;
  },
  time_based: (s, v, fail) => { s.time_based = parseBool(v, fail, "time_based"); },
  verify: (s, v, fail) => {
    const value = needValue(v, fail, "verify");
    if (value !== "crc32c" && value !== "0" && value !== "none") fail(`verify=${value} is not crc32c (the only method supported) or 0`);
    s.verify = value === "crc32c" ? "crc32c" : "none";
  },
  randseed: (s, v, fail) => { s.randseed = parseInteger(needValue(v, fail, "randseed"), fail, "randseed", 0, 2 ** 32 - 1); },
  filename: (s, v, fail) => {
    const value = needValue(v, fail, "filename");
    if (value !== RAW_DEVICE && (value.includes("/") && !value.startsWith("/") || value.slice(value.startsWith("/") ? 1 : 0).includes("/"))) {
      fail(`filename=${value} must be a file name in the emulated filesystem (one flat directory) or ${RAW_DEVICE}`);
    }
    s.filename = value;
  },
  name: (s, v, fail) => { s.name = needValue(v, fail, "name"); },
};

/** The options `dioemu bench` understands, for documentation and messages. */
export const SUPPORTED_OPTIONS = Object.keys(OPTIONS).sort();

/**
 * Parses one job file's text into resolved jobs. Throws JobFileError naming the file, the line
 * and what is wrong; an option that is not supported is named as such.
 */
export function parseJobFile(text: string, file = "<job file>"): JobSpec[] {
  const jobs: JobSpec[] = [];
  let global: Partial<JobSpec> = {};
  let current: { spec: Partial<JobSpec>; line: number; name: string } | null = null;
  let inGlobal = false;
  const finish = (): void => {
    if (current === null) return;
    const spec = { ...DEFAULTS, ...global, ...current.spec } as JobSpec;
    spec.name = current.spec.name ?? current.name;
    spec.where = `${file}:${current.line}`;
    if (spec.filename === "") spec.filename = spec.name.replace(/[^A-Za-z0-9._-]/g, "_");
    if (spec.size < spec.bs) throw new JobFileError(file, current.line, `size ${spec.size} of job ${spec.name} is smaller than bs ${spec.bs}`);
    if (spec.size % spec.bs !== 0 && spec.filename !== RAW_DEVICE) {
      throw new JobFileError(file, current.line, `size ${spec.size} of job ${spec.name} is not a multiple of bs ${spec.bs}`);
    }
    // One in-memory disk (data, metadata, cache, buffers) must fit in a wasm32 memory.
    if (spec.size > SIZE_MAX) throw new JobFileError(file, current.line, `size ${spec.size} of job ${spec.name} is more than an in-memory dioemu disk holds here (${SIZE_MAX} bytes)`);
    const depth = spec.ioengine === "libaio" ? spec.iodepth : 1;
    if (depth * spec.bs > BUFFERS_MAX) {
      throw new JobFileError(file, current.line, `iodepth ${depth} x bs ${spec.bs} of job ${spec.name} needs more than the ${BUFFERS_MAX} bytes of IO buffers a job may have`);
    }
    jobs.push(spec);
    current = null;
  };
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.replace(/^\s+|\s+$/g, "");
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return;
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section !== null) {
      finish();
      const name = section[1].trim();
      if (name === "global") {
        inGlobal = true;
      } else {
        inGlobal = false;
        current = { spec: {}, line: lineNo, name };
      }
      return;
    }
    if (!inGlobal && current === null) throw new JobFileError(file, lineNo, `option outside any section: ${JSON.stringify(line)}`);
    const eq = line.indexOf("=");
    const key = (eq < 0 ? line : line.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? undefined : line.slice(eq + 1).trim();
    const setter = OPTIONS[key];
    const fail = (message: string): never => { throw new JobFileError(file, lineNo, message); };
    if (setter === undefined) fail(`unknown or unsupported option ${JSON.stringify(key)} (supported: ${SUPPORTED_OPTIONS.join(", ")})`);
    setter(inGlobal ? global : current!.spec, value, fail);
  });
  finish();
  if (jobs.length === 0) {
    const last = lines.reduce((at, line, i) => (line.trim() !== "" ? i + 1 : at), 1);
    throw new JobFileError(file, last, "no job sections (a job is a [name] section other than [global])");
  }
  return jobs;
}
