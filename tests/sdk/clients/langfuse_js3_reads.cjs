// Reads back, with the Langfuse JS SDK 3.x unchanged, what the test seeded for run `run`.
// Arguments: the JSON object of every SDK client script, then the directory whose node_modules
// holds the SDK. fetch* calls join arrays with commas (tags=a%2Cb), unlike the Python SDKs.
// Prints one JSON object with what the calls returned.
const path = require("path");

async function main() {
  const args = JSON.parse(process.argv[2]);
  const { Langfuse } = require(path.join(process.argv[3], "node_modules", "langfuse"));
  const lf = new Langfuse({ publicKey: args.public_key, secretKey: args.secret_key, baseUrl: args.host });
  const run = args.run;
  const trace = (await lf.fetchTrace(`trace-${run}`)).data;
  const traces = await lf.fetchTraces({ userId: `user-${run}`, tags: ["a", "b"] });
  const none = await lf.fetchTraces({ userId: `user-${run}`, tags: ["a", "missing"] });
  const observations = await lf.fetchObservations({ traceId: `trace-${run}`, type: "GENERATION" });
  const observation = (await lf.fetchObservation(`gen-${run}`)).data;
  const sessions = await lf.fetchSessions({ limit: 10 });
  const missing = (await lf.fetchTrace(`no-such-${run}`).catch((e) => ({ data: { thrown: String(e) } }))).data;
  await lf.shutdownAsync();
  console.log(
    JSON.stringify({
      trace: { id: trace.id, observations: trace.observations.map((o) => o.id).sort(), latency: trace.latency },
      traces: traces.data.map((t) => t.id),
      meta: traces.meta,
      none: none.data.length,
      observations: observations.data.map((o) => o.id),
      observation: [observation.id, observation.model, observation.usage],
      sessions: sessions.data.map((s) => s.id),
      missing,
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
