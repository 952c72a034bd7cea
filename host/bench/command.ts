// `dioemu bench`: fio job files run on in-memory disks, printed like fio (normal or JSON), and
// the WebAssembly benchmark suite (`--wasm-suite`).
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { JobFileError, parseJobFile, type JobSpec } from "./jobfile.js";
import { releaseResults, runJobs } from "./runner.js";
import { fioJson, fioText } from "./report.js";
import { runWasmSuite } from "./wasmsuite.js";
import { SEMANTICS, type Semantics } from "../fs/filesystem.js";

export class BenchUsageError extends Error {}

export const BENCH_HELP = `dioemu bench [JOBFILE...] [--output-format normal|json] [--runtime S] [--seed N]
             [--semantics S] [--executor worker|inline]
dioemu bench --wasm-suite [smoke|full]

  JOBFILE          fio job files (default: the ones shipped in bench/jobs/)
  --output-format  normal (fio-like summary, the default) or json (fio's JSON shape)
  --runtime S      overrides every job's runtime, in seconds
  --seed N         overrides every job's randseed
  --semantics S    the mount's semantics (default seed)
  --executor E     the flush queue's executor (default worker)
  --wasm-suite     the fixed, seeded WebAssembly benchmark suite: figures and a checksum of each
                   workload's final image, identical on every run and machine (default size smoke)`;

/** The job files shipped with dioemu. */
export function shippedJobFiles(): string[] {
  const dir = fileURLToPath(new URL("../../../bench/jobs/", import.meta.url));
  return readdirSync(dir).filter((f) => f.endsWith(".fio")).sort().map((f) => dir + f);
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL("../../../package.json", import.meta.url)), "utf8")) as { version: string };
    return pkg.version;
  } catch {
    return "0";
  }
}

export async function benchCommand(args: string[], out: (line: string) => void, err: NodeJS.WriteStream): Promise<number> {
  const files: string[] = [];
  let format: "normal" | "json" = "normal";
  let runtime: number | undefined;
  let seed: number | undefined;
  let semantics: Semantics = "seed";
  let executor: "worker" | "inline" = "worker";
  let wasm: "smoke" | "full" | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = args[i + 1];
    switch (arg) {
      case "--output-format":
        if (value !== "normal" && value !== "json") throw new BenchUsageError(`--output-format must be normal or json, got ${value === undefined ? "nothing" : JSON.stringify(value)}`);
        format = value;
        i++;
        break;
      case "--runtime":
        if (value === undefined || !/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0) throw new BenchUsageError(`--runtime needs a positive number of seconds, got ${value === undefined ? "nothing" : JSON.stringify(value)}`);
        runtime = Number(value);
        i++;
        break;
      case "--seed":
        if (value === undefined || !/^\d+$/.test(value) || Number(value) >= 2 ** 32) throw new BenchUsageError(`--seed needs an integer in 0..4294967295, got ${value === undefined ? "nothing" : JSON.stringify(value)}`);
        seed = Number(value);
        i++;
        break;
      case "--semantics":
        if (!SEMANTICS.includes(value as Semantics)) throw new BenchUsageError(`--semantics must be one of ${SEMANTICS.join(", ")}, got ${value === undefined ? "nothing" : JSON.stringify(value)}`);
        semantics = value as Semantics;
        i++;
        break;
      case "--executor":
        if (value !== "worker" && value !== "inline") throw new BenchUsageError(`--executor must be worker or inline, got ${value === undefined ? "nothing" : JSON.stringify(value)}`);
        executor = value;
        i++;
        break;
      case "--wasm-suite":
        wasm = value === "full" || value === "smoke" ? value : "smoke";
        if (value === "full" || value === "smoke") i++;
        break;
      default:
        if (arg.startsWith("--")) throw new BenchUsageError(`unknown option ${JSON.stringify(arg)}`);
        files.push(arg);
    }
  }
  if (wasm !== undefined) {
    if (files.length > 0) throw new BenchUsageError("--wasm-suite runs its own fixed workloads; give no job files with it");
    const results = await runWasmSuite(wasm, (line: string) => { if (err.isTTY) err.write(`\r${line}`.padEnd(60)); });
    if (err.isTTY) err.write(`\r${" ".repeat(60)}\r`);
    if (format === "json") out(JSON.stringify({ suite: wasm, workloads: results }, null, 2));
    else for (const r of results) out(`${r.name.padEnd(16)} ${String(r.ops).padStart(7)} ops  ${r.mib.toFixed(1).padStart(7)} MiB  ${r.ms.toFixed(0).padStart(6)} ms  ${Math.round(r.opsPerSecond).toLocaleString("en-US").padStart(9)} ops/s  checksum ${r.checksum}`);
    return 0;
  }
  const list = files.length > 0 ? files : shippedJobFiles();
  const specs: JobSpec[] = [];
  for (const file of list) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      throw new BenchUsageError(`cannot read job file ${file}: ${(error as Error).message}`);
    }
    try {
      specs.push(...parseJobFile(text, file));
    } catch (error) {
      if (error instanceof JobFileError) throw new BenchUsageError(error.message);
      throw error;
    }
  }
  const tty = err.isTTY === true;
  const results = await runJobs(specs, {
    semantics, executor, runtime, seed,
    onProgress: tty ? (p) => err.write(`\r${p.job}: ${(p.elapsedMs / 1000).toFixed(1)} s, ${Math.round(p.iops).toLocaleString("en-US")} IOPS, ${p.ios} IOs`.padEnd(70)) : undefined,
  });
  if (tty) err.write(`\r${" ".repeat(70)}\r`);
  if (format === "json") out(JSON.stringify(fioJson(results, version()), null, 2));
  else for (const line of fioText(results)) out(line);
  const verifyFailed = results.some((r) => r.verifyErrors.length > 0 || r.errors > 0);
  releaseResults(results);
  return verifyFailed ? 1 : 0;
}
