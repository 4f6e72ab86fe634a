// The same-run peer of bench_tokenizer: transformers.js (npm @huggingface/transformers, installed by
// scripts/setup.sh) encodes every `content` of a JSONL file with each tokenizer directory, one
// thread, best of N passes; prints one JSON object {name: {"tokens": T, "seconds": S}}.
//   NODE_PATH=third_party/npm/node_modules node bench/tokenizer_peer.mjs DATA.jsonl PASSES DIR...
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(join(process.env.NODE_PATH || ".", "noop.js"));
const { env, AutoTokenizer } = await import(pathToFileURL(require.resolve("@huggingface/transformers")).href);
const [data, passes, ...dirs] = process.argv.slice(2);
const texts = readFileSync(data, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l).content);
env.allowRemoteModels = false;
const results = {};
for (const dir of dirs) {
  env.localModelPath = dirname(resolve(dir)) + "/";
  const tokenizer = await AutoTokenizer.from_pretrained(basename(resolve(dir)));
  let best = Infinity, tokens = 0;
  for (let pass = 0; pass < Number(passes); ++pass) {
    const start = process.hrtime.bigint();
    let count = 0;
    for (const text of texts) count += tokenizer.encode(text).length;
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
    tokens = count;
  }
  results[basename(resolve(dir))] = { tokens, seconds: best };
}
console.log(JSON.stringify(results));
