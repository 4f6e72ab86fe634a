// Drives the server with the official Hugging Face JS client, exactly as CLIENTS.md observed:
//   node classify.mjs URL TEXT   -> prints the client's result as JSON
// The client is resolved from NODE_PATH (the test setup npm-installs it into the build folder).
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_PATH || ".", "noop.js"));
const { InferenceClient } = await import(require.resolve("@huggingface/inference"));

const [url, text] = process.argv.slice(2);
try {
  const result = await new InferenceClient().endpoint(url).textClassification({ inputs: text });
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(`client error: ${e.message}`);
  process.exit(2);
}
