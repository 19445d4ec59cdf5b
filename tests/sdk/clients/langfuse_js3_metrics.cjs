// Queries the metrics API (v1) with the Langfuse JS SDK 3.x unchanged: api.metricsMetrics,
// over what the test seeded for run `run`. Arguments as for langfuse_js3_reads.cjs.
// Prints one JSON object with what the call returned.
const path = require("path");

async function main() {
  const args = JSON.parse(process.argv[2]);
  const { Langfuse } = require(path.join(process.argv[3], "node_modules", "langfuse"));
  const lf = new Langfuse({ publicKey: args.public_key, secretKey: args.secret_key, baseUrl: args.host });
  const query = {
    view: "scores-numeric",
    dimensions: [{ field: "name" }],
    metrics: [{ measure: "value", aggregation: "avg" }],
    filters: [{ column: "userId", operator: "=", value: `user-${args.run}`, type: "string" }],
    fromTimestamp: "2026-11-25T00:00:00Z",
    toTimestamp: "2026-11-26T00:00:00Z",
    orderBy: [{ field: "name", direction: "asc" }],
  };
  const scores = await lf.api.metricsMetrics({ query: JSON.stringify(query) });
  await lf.shutdownAsync();
  console.log(JSON.stringify({ scores }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
