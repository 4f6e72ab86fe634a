// Encodes JSONL {"text", "pair"?} lines with @huggingface/transformers (transformers.js, an
// implementation independent of Hugging Face's Rust `tokenizers`), from a local directory only,
// and writes one JSON array of ids per line (special tokens added, as tokenizer(text) does).
//   NODE_PATH=.../node_modules node encode.mjs TOKENIZER_DIR IN.jsonl OUT.jsonl
// The library is resolved from NODE_PATH (scripts/setup.sh installs it into third_party/npm).
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(join(process.env.NODE_PATH || ".", "noop.js"));
const { env, AutoTokenizer } = await import(pathToFileURL(require.resolve("@huggingface/transformers")).href);

const [dir, input, output] = process.argv.slice(2);
env.allowRemoteModels = false;
env.localModelPath = dirname(resolve(dir)) + "/";
const tokenizer = await AutoTokenizer.from_pretrained(basename(resolve(dir)));
const lines = readFileSync(input, "utf8").split("\n").filter((l) => l.length > 0);
const out = lines.map((line) => {
  const { text, pair } = JSON.parse(line);
  const options = pair === undefined || pair === null ? {} : { text_pair: pair };
  return JSON.stringify(tokenizer.encode(text, options));
});
writeFileSync(output, out.join("\n") + "\n");
