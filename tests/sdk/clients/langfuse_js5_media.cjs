// The current Langfuse JS SDK (@langfuse/otel's span processor), unchanged, with an image inline
// in an observation's input as a base64 data URI: the processor takes it out of the span, leaves
// a reference and uploads the bytes through /api/public/media. Arguments: the JSON object of
// every SDK client script, then the directory whose node_modules holds the packages. Prints one
// JSON object: the ids, the image's data URI as sent, and what OTel and the SDK logged.
const { createRequire } = require("module");
const path = require("path");

async function main() {
  const args = JSON.parse(process.argv[2]);
  const load = createRequire(path.join(process.argv[3], "package.json"));
  const { diag, DiagLogLevel } = load("@opentelemetry/api");
  const { NodeTracerProvider } = load("@opentelemetry/sdk-trace-node");
  const { LangfuseSpanProcessor } = load("@langfuse/otel");
  const { startObservation } = load("@langfuse/tracing");

  const errors = [];
  const collect = (...m) => errors.push(m.map(String).join(" "));
  diag.setLogger({ error: collect, warn: collect, info: () => {}, debug: () => {}, verbose: () => {} }, DiagLogLevel.WARN);

  const processor = new LangfuseSpanProcessor({ publicKey: args.public_key, secretKey: args.secret_key, baseUrl: args.host });
  const provider = new NodeTracerProvider({ spanProcessors: [processor] });
  provider.register();
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from(`run ${args.run}`)]);
  const image = `data:image/png;base64,${png.toString("base64")}`;
  const message = { role: "user", content: [{ type: "image_url", image_url: { url: image } }] };
  const observation = startObservation("vision", { input: { messages: [message] } });
  observation.end();
  await processor.forceFlush();
  await provider.shutdown();
  console.log(JSON.stringify({ trace_id: observation.traceId, observation_id: observation.id, image, errors }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
