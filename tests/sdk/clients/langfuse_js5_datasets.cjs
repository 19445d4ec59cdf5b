// Datasets with the current Langfuse JS SDK (@langfuse/client + @langfuse/tracing), unchanged:
// api.datasets.create, dataset.createItem, dataset.get (paged), an item's link() to a traced
// observation, dataset.runExperiment with a local task and evaluator (which posts run items),
// and the API client's reads of runs. Arguments: the JSON object of every SDK client script,
// then the directory whose node_modules holds the packages. Prints one JSON object with what
// the calls returned.
const { createRequire } = require("module");
const path = require("path");

async function main() {
  const args = JSON.parse(process.argv[2]);
  const load = createRequire(path.join(process.argv[3], "package.json"));
  const { NodeTracerProvider } = load("@opentelemetry/sdk-trace-node");
  const { LangfuseSpanProcessor } = load("@langfuse/otel");
  const { startObservation } = load("@langfuse/tracing");
  const { LangfuseClient } = load("@langfuse/client");

  const processor = new LangfuseSpanProcessor({
    publicKey: args.public_key,
    secretKey: args.secret_key,
    baseUrl: args.host,
  });
  const provider = new NodeTracerProvider({ spanProcessors: [processor] });
  provider.register();
  const lf = new LangfuseClient({ publicKey: args.public_key, secretKey: args.secret_key, baseUrl: args.host });

  const name = `${args.run}/translations`;
  const created = await lf.api.datasets.create({ name, description: "en to fr", metadata: { team: "i18n" } });
  const words = { cat: "chat", dog: "chien", bird: "oiseau" };
  for (const [n, [en, fr]] of Object.entries(words).entries()) {
    await lf.dataset.createItem({ datasetName: name, id: `${args.run}-${en}`, input: { en }, expectedOutput: fr, metadata: { n } });
  }
  const dataset = await lf.dataset.get(name, { fetchItemsPageSize: 2 });

  // The manual way: an observation per item, linked to the run.
  const linked = {};
  for (const item of dataset.items) {
    const span = startObservation("translate", { input: item.input });
    const runItem = await item.link(span, `${args.run}-manual`, { description: "by hand", metadata: { v: 1 } });
    span.update({ output: words[item.input.en] }).end();
    linked[item.id] = [runItem.traceId, span.traceId, runItem.observationId, span.id];
  }

  const result = await dataset.runExperiment({
    name: "translate",
    runName: `${args.run}-experiment`,
    description: "dictionary",
    task: async ({ input }) => (input.en === "bird" ? "pigeon" : words[input.en]),
    evaluators: [
      async ({ output, expectedOutput }) => ({ name: "exact", value: output === expectedOutput ? 1 : 0 }),
    ],
  });
  await processor.forceFlush();
  await lf.flush();

  const run = await lf.api.datasets.getRun(name, `${args.run}-manual`);
  const runs = await lf.api.datasets.getRuns(name);
  console.log(
    JSON.stringify({
      created: [created.name, created.description, created.metadata],
      items: dataset.items.map((i) => [i.id, i.input.en, i.expectedOutput, i.metadata.n]).sort(),
      linked,
      run: [run.name, run.description, run.metadata, run.datasetRunItems.map((i) => [i.datasetItemId, i.traceId]).sort()],
      runs: runs.data.map((r) => r.name).sort(),
      experiment: {
        runId: result.datasetRunId,
        items: result.itemResults.map((r) => [r.item.id, r.traceId, r.output, r.evaluations.map((e) => e.value)]).sort(),
      },
    })
  );
  await provider.shutdown();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
