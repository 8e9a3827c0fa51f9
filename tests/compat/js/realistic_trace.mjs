// One realistic agent trace through the official Langfuse JS/TS SDK, unchanged:
// @langfuse/tracing + @langfuse/otel's LangfuseSpanProcessor on the OpenTelemetry NodeSDK,
// scores and a read-back through @langfuse/client. Configured by the environment only
// (LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY / LANGFUSE_BASE_URL, LANGFUSE_TRACING_ENVIRONMENT,
// LANGFUSE_RELEASE, TH_SESSION_ID). Prints one JSON line: the ids it created and what the
// client read back. Driven by tests/compat/test_sdk_js.py.
import { diag, DiagLogLevel } from "@opentelemetry/api";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { LangfuseSpanProcessor } from "@langfuse/otel";
import {
  getActiveSpanId,
  observe,
  propagateAttributes,
  setActiveTraceAsPublic,
  setActiveTraceIO,
  startActiveObservation,
  startObservation,
  updateActiveObservation,
} from "@langfuse/tracing";
import { LangfuseClient } from "@langfuse/client";

// Export problems are reported through the OTel diag logger: put them on stderr.
const toStderr = (level) => (...args) => console.error(`otel ${level}:`, ...args);
diag.setLogger(
  { error: toStderr("error"), warn: toStderr("warn"), info() {}, debug() {}, verbose() {} },
  DiagLogLevel.WARN,
);

const processor = new LangfuseSpanProcessor();
const sdk = new NodeSDK({ spanProcessors: [processor] });
sdk.start();

const ids = {};
const t0 = new Date(Date.now() - 10_000);
const at = (ms) => new Date(t0.getTime() + ms);
const question = "Will it rain in Paris tomorrow?";
const answer = "Light rain is expected in the afternoon.";

const weatherApi = observe(
  async (city) => {
    ids.weather_tool = getActiveSpanId();
    updateActiveObservation(
      { level: "WARNING", statusMessage: "retried once after a timeout" },
      { asType: "tool" },
    );
    return { city, rainMm: 2.5 };
  },
  { name: "weather-api", asType: "tool" },
);

await startActiveObservation(
  "support-agent",
  async (agent) => {
    ids.trace = agent.traceId;
    ids.agent = agent.id;
    agent.update({
      input: { question },
      metadata: { strategy: "react", maxSteps: 4, limits: { tokens: 2048 } },
    });
    await propagateAttributes(
      {
        traceName: "js-support-request",
        userId: "user-js",
        sessionId: process.env.TH_SESSION_ID,
        tags: ["js-sdk", "agent"],
        metadata: { team: "support", region: "eu" },
        version: "agent-2.1",
      },
      async () => {
        setActiveTraceIO({ input: { question, locale: "en" }, output: { answer } });
        setActiveTraceAsPublic();

        await startActiveObservation(
          "vector-search",
          async (retriever) => {
            ids.retriever = retriever.id;
            retriever.update({
              input: { query: "paris weather forecast", topK: 2 },
              metadata: { index: "forecasts" },
            });
            const rerank = retriever.startObservation(
              "rerank",
              { input: ["doc-42", "doc-17"] },
              { asType: "tool" },
            );
            ids.rerank = rerank.id;
            rerank.update({ output: ["doc-17", "doc-42"] }).end();
            retriever.update({ output: { documents: ["doc-17", "doc-42"] } });
          },
          { asType: "retriever", startTime: at(100) },
        );

        await weatherApi("Paris");

        const messages = [
          { role: "system", content: "You are a weather assistant." },
          { role: "user", content: question },
        ];
        const generation = startObservation(
          "chat-completion",
          {
            model: "gpt-4o-mini",
            modelParameters: { temperature: 0.2, max_tokens: 256, tool_choice: "auto" },
            input: messages,
          },
          { asType: "generation", startTime: at(1000) },
        );
        ids.generation = generation.id;
        generation.update({
          completionStartTime: at(1350),
          output: { role: "assistant", content: answer },
          usageDetails: { input: 42, output: 9, input_cached_tokens: 10 },
          costDetails: { input: 0.00042, output: 0.00018 },
        });
        generation.end(at(2200));

        const event = startObservation(
          "cache-miss",
          { input: { key: "paris:tomorrow" }, level: "DEBUG", metadata: { cache: "redis" } },
          { asType: "event" },
        );
        ids.event = event.id;

        const guardrail = startObservation(
          "pii-filter",
          { input: answer },
          { asType: "guardrail" },
        );
        ids.guardrail = guardrail.id;
        guardrail.update({ level: "ERROR", statusMessage: "classifier unavailable" }).end();
      },
    );
    agent.update({ output: { answer, steps: 3 } });
  },
  { asType: "agent", startTime: t0 },
);

await processor.forceFlush(); // rejects when an export fails
await sdk.shutdown();

const langfuse = new LangfuseClient();
langfuse.score.create({
  traceId: ids.trace,
  name: "helpfulness",
  value: 0.9,
  comment: "clear answer",
});
langfuse.score.create({
  traceId: ids.trace,
  observationId: ids.generation,
  name: "tone",
  value: "friendly",
  dataType: "CATEGORICAL",
});
await langfuse.flush();

const trace = await langfuse.api.trace.get(ids.trace);
const read = {
  name: trace.name,
  userId: trace.userId,
  sessionId: trace.sessionId,
  tags: trace.tags,
  environment: trace.environment,
  input: trace.input,
  observations: Object.fromEntries(trace.observations.map((o) => [o.id, o.type])),
  scores: trace.scores.map((s) => s.name).sort(),
};
await langfuse.shutdown();

console.log(JSON.stringify({ ids, read }));
