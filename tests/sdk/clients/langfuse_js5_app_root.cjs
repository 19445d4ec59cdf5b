// The current Langfuse JS SDK (@langfuse/tracing + @langfuse/otel), unchanged, inside an HTTP
// server instrumented by @opentelemetry/instrumentation-http: the usual Node app. The server span
// is the trace's root, but the LangfuseSpanProcessor exports only Langfuse and GenAI spans by
// default, so AgentTrace never receives it; the first exported span (the handler's observation,
// whose parent is the server span) carries langfuse.internal.is_app_root instead.
// Arguments: the JSON object of every SDK client script, then the directory whose node_modules
// holds the packages. Prints one JSON object with the ids the test looks for.
const { createRequire } = require("module");
const fs = require("fs");
const path = require("path");

async function main() {
  const args = JSON.parse(process.argv[2]);
  const load = createRequire(path.join(process.argv[3], "package.json"));
  const { diag, DiagLogLevel, trace } = load("@opentelemetry/api");
  const { NodeTracerProvider } = load("@opentelemetry/sdk-trace-node");
  const { registerInstrumentations } = load("@opentelemetry/instrumentation");
  const { HttpInstrumentation } = load("@opentelemetry/instrumentation-http");
  const { LangfuseSpanProcessor } = load("@langfuse/otel");
  const { startActiveObservation, startObservation } = load("@langfuse/tracing");

  // A failed export is only logged: collect what OTel and the SDK report, for the test to see.
  const errors = [];
  diag.setLogger(
    {
      error: (...m) => errors.push(m.map(String).join(" ")),
      warn: (...m) => errors.push(m.map(String).join(" ")),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    DiagLogLevel.WARN,
  );

  const langfuse = new LangfuseSpanProcessor({
    publicKey: args.public_key,
    secretKey: args.secret_key,
    baseUrl: args.host,
    environment: "sdk-test",
  });
  const ended = []; // every span the app ended, exported or not
  const recorder = {
    onStart: () => {},
    onEnd: (s) =>
      ended.push({
        id: s.spanContext().spanId,
        name: s.name,
        scope: s.instrumentationScope.name,
        app_root: s.attributes["langfuse.internal.is_app_root"] === true,
      }),
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const provider = new NodeTracerProvider({ spanProcessors: [langfuse, recorder] });
  provider.register();
  // Incoming requests only: the server span is then the root of the trace, as behind a proxy
  // that starts none (the test's own call and the exporter's posts stay untraced).
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [new HttpInstrumentation({ disableOutgoingRequestInstrumentation: true })],
  });
  const http = require("http"); // after registering, so that the instrumentation patches it

  let seen = null;
  const server = http.createServer((req, res) => {
    const serverSpan = trace.getActiveSpan();
    startActiveObservation(
      "chat-request",
      async (span) => {
        span.update({ input: { question: "what is 2+2?" } });
        const generation = startObservation(
          "llm",
          {
            model: "gpt-4o",
            input: [{ role: "user", content: "what is 2+2?" }],
            modelParameters: { temperature: 0.2 },
          },
          { asType: "generation" },
        );
        generation.update({ output: { role: "assistant", content: "4" }, usageDetails: { input: 12, output: 3 } });
        generation.end();
        span.update({ output: { answer: "4" } });
        seen = {
          trace_id: span.traceId,
          server_span_id: serverSpan.spanContext().spanId,
          root_id: span.id,
          generation_id: generation.id,
        };
        return "4";
      },
      { asType: "agent" },
    ).then((answer) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(answer);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  const status = await new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: "/chat?q=1" }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
      })
      .on("error", reject);
  });
  await new Promise((resolve) => server.close(resolve));
  const failed = (e) => errors.push([].concat(e).map(String).join("; "));
  await provider.forceFlush().catch(failed);
  await provider.shutdown().catch(failed);

  console.log(
    JSON.stringify({
      sdk_version: JSON.parse(
        fs.readFileSync(path.join(process.argv[3], "node_modules", "@langfuse", "otel", "package.json")),
      ).version,
      status,
      ...seen,
      ended,
      errors,
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
