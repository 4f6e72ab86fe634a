// @huggingface/hub's downloadFileToCacheDir for each FILE, against a Hub at HUB_URL, into CACHE:
//   node download_to_cache.mjs HUB_URL CACHE REPO REVISION FILE...
// Prints {"paths": [...]} as its last line: the snapshot path of each file. The client is resolved
// from NODE_PATH (scripts/setup.sh installs it, pinned, into third_party/npm).
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_PATH || ".", "noop.js"));
const { downloadFileToCacheDir } = await import(require.resolve("@huggingface/hub"));

const [hubUrl, cacheDir, repo, revision, ...files] = process.argv.slice(2);
const paths = [];
for (const path of files) {
  paths.push(await downloadFileToCacheDir({ repo, path, revision, hubUrl, cacheDir }));
}
console.log(JSON.stringify({ paths }));
