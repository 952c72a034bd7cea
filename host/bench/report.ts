// fio's output, from dioemu's job results: the JSON shape fio prints with --output-format=json
// (jobs[].read|write|sync with io_bytes, bw in KiB/s, iops, clat_ns/lat_ns with min, max, mean,
// stddev, N and percentiles), and a human summary like fio's normal output.
import { direction, type DirectionStats, type Histogram, type JobResult } from "./runner.js";

/** The percentiles fio reports by default. */
export const FIO_PERCENTILES = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99];

function latency(h: Histogram, withPercentiles: boolean): Record<string, unknown> {
  const n = h.totalCount;
  const out: Record<string, unknown> = {
    min: n === 0 ? 0 : h.minNonZeroValue,
    max: n === 0 ? 0 : h.maxValue,
    mean: n === 0 ? 0 : h.mean,
    stddev: n === 0 ? 0 : h.stdDeviation,
    N: n,
  };
  if (withPercentiles && n > 0) {
    const percentile: Record<string, number> = {};
    for (const p of FIO_PERCENTILES) percentile[p.toFixed(6)] = h.getValueAtPercentile(p);
    out.percentile = percentile;
  }
  return out;
}

function directionJson(d: DirectionStats, runtimeMs: number): Record<string, unknown> {
  const seconds = runtimeMs / 1000;
  const bwBytes = seconds > 0 ? d.bytes / seconds : 0;
  return {
    io_bytes: d.bytes,
    io_kbytes: Math.floor(d.bytes / 1024),
    bw_bytes: Math.round(bwBytes),
    bw: Math.round(bwBytes / 1024),
    iops: seconds > 0 ? d.ios / seconds : 0,
    runtime: d.ios > 0 ? Math.round(runtimeMs) : 0,
    total_ios: d.ios,
    short_ios: 0,
    drop_ios: 0,
    slat_ns: latency(d.slat, false),
    clat_ns: latency(d.clat, true),
    lat_ns: latency(d.lat, false),
  };
}

/** The whole report as fio's JSON. */
export function fioJson(results: JobResult[], version: string): Record<string, unknown> {
  const now = Date.now();
  return {
    "fio version": `dioemu-${version}`,
    timestamp: Math.floor(now / 1000),
    timestamp_ms: now,
    time: new Date(now).toUTCString(),
    "global options": {},
    jobs: results.map((r, index) => ({
      jobname: r.spec.name,
      groupid: 0,
      error: r.errors > 0 || r.verifyErrors.length > 0 ? 5 : 0,
      eta: 0,
      elapsed: Math.ceil(r.runtimeMs / 1000),
      "job options": jobOptions(r),
      read: directionJson(r.read, r.runtimeMs),
      write: directionJson(r.write, r.runtimeMs),
      trim: directionJson(direction(), 0),
      sync: { total_ios: r.sync.ios, lat_ns: latency(r.sync.lat, true) },
      job_runtime: Math.round(r.runtimeMs),
      usr_cpu: 0,
      sys_cpu: 0,
      ctx: 0,
      majf: 0,
      minf: 0,
      iodepth_level: {},
      latency_ns: {},
      dioemu: { instance: r.instance, index, verified: r.verified, verify_errors: r.verifyErrors },
    })),
  };
}

function jobOptions(r: JobResult): Record<string, string> {
  const s = r.spec;
  return {
    name: s.name, rw: s.rw, bs: String(s.bs), size: String(s.size), iodepth: String(s.iodepth), direct: s.direct ? "1" : "0",
    ioengine: s.ioengine, sync: s.sync === "none" ? "0" : s.sync, filename: s.filename,
    ...(s.rw === "readwrite" || s.rw === "randrw" ? { rwmixread: String(s.rwmixread) } : {}),
    ...(s.fsync > 0 ? { fsync: String(s.fsync) } : {}),
    ...(s.fdatasync > 0 ? { fdatasync: String(s.fdatasync) } : {}),
    ...(s.verify !== "none" ? { verify: s.verify } : {}),
    ...(s.runtime > 0 ? { runtime: String(s.runtime) } : {}),
    ...(s.time_based ? { time_based: "1" } : {}),
  };
}

function unit(ns: number): string {
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(2)}s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)}ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)}us`;
  return `${ns.toFixed(0)}ns`;
}

function rate(bytesPerSecond: number): string {
  if (bytesPerSecond >= 1 << 30) return `${(bytesPerSecond / (1 << 30)).toFixed(2)}GiB/s`;
  if (bytesPerSecond >= 1 << 20) return `${(bytesPerSecond / (1 << 20)).toFixed(1)}MiB/s`;
  return `${(bytesPerSecond / 1024).toFixed(1)}KiB/s`;
}

/** A summary like fio's normal output. */
export function fioText(results: JobResult[]): string[] {
  const lines: string[] = [];
  for (const r of results) {
    const s = r.spec;
    lines.push(`${s.name}: (groupid=0, jobs=1): err=${r.errors > 0 || r.verifyErrors.length > 0 ? 5 : 0}: rw=${s.rw}, bs=${s.bs}, ioengine=${s.ioengine}, iodepth=${s.ioengine === "libaio" ? s.iodepth : 1}, direct=${s.direct ? 1 : 0}${s.sync !== "none" ? `, sync=${s.sync}` : ""}${s.numjobs > 1 ? ` (instance ${r.instance + 1} of ${s.numjobs})` : ""}`);
    for (const [name, d] of [["read", r.read], ["write", r.write]] as const) {
      if (d.ios === 0) continue;
      const seconds = r.runtimeMs / 1000;
      lines.push(`  ${name}: IOPS=${Math.round(d.ios / seconds)}, BW=${rate(d.bytes / seconds)} (${d.bytes} bytes/${Math.round(r.runtimeMs)}msec)`);
      lines.push(`    clat: min=${unit(d.clat.minNonZeroValue)}, max=${unit(d.clat.maxValue)}, avg=${unit(d.clat.mean)}, stdev=${unit(d.clat.stdDeviation)}`);
      const pct = [50, 90, 99, 99.9, 99.99].map((p) => `${p}th=${unit(d.clat.getValueAtPercentile(p))}`);
      lines.push(`    clat percentiles: ${pct.join(", ")}`);
    }
    if (r.sync.ios > 0) lines.push(`  sync: ${r.sync.ios} calls, avg=${unit(r.sync.lat.mean)}, 99th=${unit(r.sync.lat.getValueAtPercentile(99))}`);
    if (s.verify !== "none") {
      lines.push(`  verify: ${r.verified} blocks checked, ${r.verifyErrors.length} bad`);
      for (const e of r.verifyErrors.slice(0, 10)) lines.push(`    verify: bad block at offset ${e.offset}: ${e.message}`);
    }
    if (r.errors > 0) lines.push(`  errors: ${r.errors} requests failed`);
  }
  return lines;
}
