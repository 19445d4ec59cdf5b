// Prompts and a score's deletion with the current Langfuse JS SDK (@langfuse/client), unchanged:
// prompt.create (text in a folder, chat with a placeholder), prompt.get by default label, label
// and version, compile, prompt.update, prompt.delete, a fallback for a missing prompt, and
// api.legacy.scoreV1.delete. Arguments: the JSON object of every SDK client script, the
// directory whose node_modules holds the packages, then a score id to delete. Prints one JSON
// object with what the calls returned.
const { createRequire } = require("module");
const path = require("path");

async function main() {
  const args = JSON.parse(process.argv[2]);
  const load = createRequire(path.join(process.argv[3], "package.json"));
  const { LangfuseClient } = load("@langfuse/client");
  const lf = new LangfuseClient({ publicKey: args.public_key, secretKey: args.secret_key, baseUrl: args.host });
  const name = `${args.run}/support/reply`;
  await lf.prompt.create({ name, prompt: "Reply to {{customer}}", labels: ["production"], config: { temperature: 0.1 } });
  await lf.prompt.create({ name, prompt: "Reply kindly to {{customer}}", labels: ["staging"], commitMessage: "kinder" });
  const production = await lf.prompt.get(name, { cacheTtlSeconds: 0 });
  const staging = await lf.prompt.get(name, { label: "staging", cacheTtlSeconds: 0 });
  await lf.prompt.update({ name, version: 2, newLabels: ["production"] });
  const promoted = await lf.prompt.get(name, { cacheTtlSeconds: 0 });
  await lf.prompt.delete(name, { version: 1 });
  const first = await lf.prompt.get(name, { version: 1, cacheTtlSeconds: 0, fallback: "gone" });
  const chatName = `${args.run}-chat`;
  await lf.prompt.create({
    name: chatName,
    type: "chat",
    prompt: [
      { role: "system", content: "You answer in {{language}}." },
      { type: "placeholder", name: "history" },
    ],
    labels: ["production"],
  });
  const chat = await lf.prompt.get(chatName, { type: "chat", cacheTtlSeconds: 0 });
  const deleted = await lf.api.legacy.scoreV1.delete(process.argv[4]);
  console.log(
    JSON.stringify({
      production: [production.version, production.compile({ customer: "Ada" }), production.config],
      staging: [staging.version, staging.commitMessage],
      promoted: [promoted.version, [...promoted.labels].sort()],
      first: [first.isFallback, first.prompt],
      chat: chat.compile({ language: "French" }, { history: [{ role: "user", content: "Bonjour" }] }),
      score: deleted === undefined ? null : deleted,
    })
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
