// The ONNX Runtime peer of bench/inference.sh: npm onnxruntime-node (its bundled CPU library, installed
// by scripts/setup.sh) runs DIR/model.onnx (bench/torch_distilbert.py export-onnx) with every graph
// optimization on and `--threads` intra-op threads. First checks its logits against PyTorch fp32's
// (DIR/reference.safetensors, written by torch_distilbert.py bench), then times batch 1 and batch 32 of
// `--tokens` tokens (2 warm-ups, medians) and prints one JSON line in torch_distilbert.py bench's shape.
//   NODE_PATH=third_party/npm/node_modules node bench/ort_distilbert.mjs DIR [--threads 2] [--tokens 128]
//                                                                      [--reps-b1 20] [--reps-b32 5]
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const require = createRequire(join(resolve(process.env.NODE_PATH || "."), "noop.js"));
const ort = require("onnxruntime-node");

const [dir, ...rest] = process.argv.slice(2);
const opt = { threads: 2, tokens: 128, "reps-b1": 20, "reps-b32": 5 };
for (let i = 0; i < rest.length; i += 2) {
  const key = rest[i].replace(/^--/, "");
  if (!(key in opt) || rest[i + 1] === undefined) throw new Error(`ort_distilbert.mjs: unknown or valueless option ${rest[i]}`);
  opt[key] = Number(rest[i + 1]);
}
const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));

// safetensors: u64 header length, JSON header, data (only the dtypes reference.safetensors holds).
function readSafetensors(path) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const out = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [begin, end] = info.data_offsets;
    const bytes = buf.subarray(8 + n + begin, 8 + n + end);
    const copy = new Uint8Array(bytes).buffer;  // aligned
    const kind = { F32: Float32Array, I64: BigInt64Array }[info.dtype];
    if (!kind) throw new Error(`${path}: ${name}: dtype ${info.dtype} not handled`);
    out[name] = { data: new kind(copy), shape: info.shape };
  }
  return out;
}

const session = await ort.InferenceSession.create(join(dir, "model.onnx"), {
  intraOpNumThreads: opt.threads, interOpNumThreads: 1, executionMode: "sequential",
  graphOptimizationLevel: "all",
});
const run = async (ids, mask, dims) =>
  (await session.run({ input_ids: new ort.Tensor("int64", ids, dims), attention_mask: new ort.Tensor("int64", mask, dims) }))
    .logits.data;

// Parity with PyTorch fp32 on its padded reference batch.
const ref = readSafetensors(join(dir, "reference.safetensors"));
const got = await run(ref.input_ids.data, ref.attention_mask.data, ref.input_ids.shape);
const want = ref.logits.data, K = ref.logits.shape[1];
let maxErr = 0, agree = 0, ok = true;
const atol = 1e-4, rtol = 1e-4;
for (let i = 0; i < want.length; ++i) {
  const d = Math.abs(got[i] - want[i]);
  maxErr = Math.max(maxErr, d);
  if (d > atol + rtol * Math.abs(want[i])) ok = false;
}
const argmax = (a, r) => { let best = 0; for (let k = 1; k < K; ++k) if (a[r * K + k] > a[r * K + best]) best = k; return best; };
for (let r = 0; r < want.length / K; ++r) agree += argmax(got, r) === argmax(want, r) ? 1 : 0;
const parity = { max_abs_err: maxErr, atol, rtol, argmax_agree: agree, rows: want.length / K, ok };

// Deterministic ids in [1, vocab): a 32-bit LCG (the values do not change the work).
let state = 1234;
const nextId = () => { state = (Math.imul(state, 1664525) + 1013904223) >>> 0; return 1 + (state % (config.vocab_size - 1)); };
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const C = config.dim, F = config.hidden_dim, L = config.n_layers, T = opt.tokens;
const flopsPerSequence = 2 * T * L * (4 * C * C + 2 * C * F + 2 * T * C);

const runs = [];
for (const [B, reps] of [[1, opt["reps-b1"]], [32, opt["reps-b32"]]]) {
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(nextId()));
  const mask = new BigInt64Array(B * T).fill(1n);
  for (let i = 0; i < 2; ++i) await run(ids, mask, [B, T]);
  const wall = [], cpu = [];
  for (let i = 0; i < reps; ++i) {
    const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
    await run(ids, mask, [B, T]);
    wall.push(Number(process.hrtime.bigint() - t0) / 1e9);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e6);
  }
  const s = median(wall);
  runs.push({ batch: B, tokens: T, ms: s * 1e3, cpu_ms: median(cpu) * 1e3, seq_per_s: B / s, gflops: (B * flopsPerSequence) / s / 1e9 });
}
console.log(JSON.stringify({ peer: `onnxruntime ${ort.env.versions.node} fp32`, threads: opt.threads, parity, runs }));
if (!ok) process.exitCode = 1;
