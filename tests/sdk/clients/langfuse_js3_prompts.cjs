// Prompts with the Langfuse JS SDK 3.x, unchanged: createPrompt (text in a folder, chat),
// getPrompt by default label, version and label, compile, and a fallback for a missing prompt.
// Arguments: the JSON object of every SDK client script, then the directory whose node_modules
// holds the SDK. Prints one JSON object with what the calls returned.
const path = require("path");

async function main() {
  const args = JSON.parse(process.argv[2]);
  const { Langfuse } = require(path.join(process.argv[3], "node_modules", "langfuse"));
  const lf = new Langfuse({ publicKey: args.public_key, secretKey: args.secret_key, baseUrl: args.host });
  const name = `${args.run}/greet`;
  await lf.createPrompt({ name, prompt: "Hi {{who}}", labels: ["production"], config: { temperature: 0 } });
  await lf.createPrompt({ name, prompt: "Hello {{who}}", labels: ["staging"] });
  const production = await lf.getPrompt(name, undefined, { cacheTtlSeconds: 0 });
  const staging = await lf.getPrompt(name, undefined, { label: "staging", cacheTtlSeconds: 0 });
  const first = await lf.getPrompt(name, 1, { cacheTtlSeconds: 0 });
  const chatName = `${args.run}-chat`;
  await lf.createPrompt({
    name: chatName,
    type: "chat",
    prompt: [{ role: "system", content: "Be {{tone}}." }],
    labels: ["production"],
  });
  const chat = await lf.getPrompt(chatName, undefined, { type: "chat", cacheTtlSeconds: 0 });
  const missing = await lf.getPrompt(`${args.run}-never`, undefined, { fallback: "fb", cacheTtlSeconds: 0 });
  await lf.shutdownAsync();
  console.log(
    JSON.stringify({
      production: [production.version, production.compile({ who: "Ada" }), production.config],
      staging: staging.version,
      first: first.prompt,
      chat: chat.compile({ tone: "brief" }),
      missing: [missing.isFallback, missing.prompt],
    })
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
