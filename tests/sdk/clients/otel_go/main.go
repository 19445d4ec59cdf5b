// Command otel_go records one agent trace with the OpenTelemetry Go SDK and exports it with the
// SDK's own OTLP exporter, unchanged: OTLP/HTTP (protobuf, gzip) or OTLP/gRPC (gzip). It prints
// one JSON object: the ids it made, the SDK's version and every error the SDK reported.
//
//	otel_go [-protocol http/protobuf|http/json|grpc] [-endpoint URL] '{"host", "public_key", "secret_key", "run"}'
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The chat's messages as the GenAI conventions' JSON attributes; the test expects these.
const (
	inputMessages  = `[{"role":"user","parts":[{"type":"text","content":"what is 2+2?"}]}]`
	outputMessages = `[{"role":"assistant","parts":[{"type":"text","content":"4"}],"finish_reason":"stop"}]`
)

type config struct {
	Host      string `json:"host"`
	PublicKey string `json:"public_key"`
	SecretKey string `json:"secret_key"`
	Run       string `json:"run"`
}

type result struct {
	SDKVersion string   `json:"sdk_version"`
	Protocol   string   `json:"protocol"`
	TraceID    string   `json:"trace_id"`
	AgentID    string   `json:"agent_id"`
	ChatID     string   `json:"chat_id"`
	ToolID     string   `json:"tool_id"`
	Errors     []string `json:"errors"`
}

// errorLog keeps what the SDK hands to otel.Handle: the batch processor reports a failed or
// partially rejected export there and nowhere else.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Handle(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, err.Error())
}

func (l *errorLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string{}, l.msgs...) // [] rather than null in the JSON
}

func main() {
	protocol := flag.String("protocol", "http/protobuf", "http/protobuf, http/json or grpc")
	endpoint := flag.String("endpoint", "", "OTLP endpoint URL (http/protobuf: default host + /api/public/otel/v1/traces; grpc: required)")
	flag.Parse()
	var cfg config
	if flag.NArg() != 1 {
		fail(errors.New("expected one JSON argument"))
	}
	if err := json.Unmarshal([]byte(flag.Arg(0)), &cfg); err != nil {
		fail(err)
	}
	errs := &errorLog{}
	otel.SetErrorHandler(errs)

	ctx := context.Background()
	exporter, err := newExporter(ctx, *protocol, *endpoint, cfg)
	if err != nil {
		fail(err)
	}
	out := record(ctx, exporter, cfg.Run, errs)
	out.Protocol = *protocol
	out.SDKVersion = sdk.Version()
	out.Errors = errs.all()
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func newExporter(ctx context.Context, protocol, endpoint string, cfg config) (sdktrace.SpanExporter, error) {
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.PublicKey+":"+cfg.SecretKey))
	switch protocol {
	case "http/protobuf", "http/json":
		if endpoint == "" {
			endpoint = cfg.Host + "/api/public/otel/v1/traces"
		}
		encoding := otlptracehttp.EncodingProtobuf
		if protocol == "http/json" {
			encoding = otlptracehttp.EncodingJSON
		}
		return otlptracehttp.New(ctx,
			otlptracehttp.WithEndpointURL(endpoint),
			otlptracehttp.WithEncoding(encoding),
			otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
			otlptracehttp.WithHeaders(map[string]string{"Authorization": auth}),
			otlptracehttp.WithTimeout(10*time.Second),
		)
	case "grpc":
		if endpoint == "" {
			return nil, errors.New("-endpoint is required with -protocol grpc")
		}
		return otlptracegrpc.New(ctx,
			otlptracegrpc.WithEndpointURL(endpoint),
			otlptracegrpc.WithCompressor("gzip"),
			// gRPC metadata keys are lower-case.
			otlptracegrpc.WithHeaders(map[string]string{"authorization": auth}),
			otlptracegrpc.WithTimeout(10*time.Second),
		)
	}
	return nil, fmt.Errorf("unknown protocol %q", protocol)
}

// record makes an agent span with a chat span and a failing tool span under it, then flushes
// and shuts down, reporting their errors with the exporter's.
func record(ctx context.Context, exporter sdktrace.SpanExporter, run string, errs *errorLog) result {
	// resource.Default() adds telemetry.sdk.*, as a Go service's resource usually has.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", "sdk-test-go"),
		attribute.String("service.version", "1.4.2"),
		attribute.String("deployment.environment.name", "sdk-test"),
	))
	if err != nil {
		fail(err)
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		// The default sampler follows OTEL_TRACES_SAMPLER; the test needs every span.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(exporter),
	)
	tracer := provider.Tracer("agenttrace.tests.sdk", trace.WithInstrumentationVersion("1.0"))

	inner, agent := tracer.Start(ctx, "invoke_agent planner", trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "invoke_agent"),
		attribute.String("gen_ai.agent.name", "planner"),
		attribute.String("langfuse.trace.name", "go agent run"),
		attribute.String("user.id", "user-"+run),
		attribute.String("session.id", "session-"+run),
	))
	_, chat := tracer.Start(inner, "chat gpt-4o-mini", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", "gpt-4o-mini"),
		attribute.Float64("gen_ai.request.temperature", 0.2),
		attribute.Int("gen_ai.request.max_tokens", 128),
		attribute.Int("gen_ai.usage.input_tokens", 12),
		attribute.Int("gen_ai.usage.output_tokens", 3),
		attribute.String("gen_ai.input.messages", inputMessages),
		attribute.String("gen_ai.output.messages", outputMessages),
		attribute.StringSlice("gen_ai.response.finish_reasons", []string{"stop"}),
	))
	chat.End()
	_, tool := tracer.Start(inner, "execute_tool calc", trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "execute_tool"),
		attribute.String("gen_ai.tool.name", "calc"),
		attribute.String("gen_ai.tool.call.arguments", `{"expr": "2+2"}`),
	))
	// Go code records the error as an exception event and sets the status, both.
	failure := errors.New("division by zero")
	tool.RecordError(failure)
	tool.SetStatus(codes.Error, failure.Error())
	tool.End()
	agent.End()

	// Bounded below the test's 60 s wait, so that a stuck export is reported, not killed.
	flushCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := provider.ForceFlush(flushCtx); err != nil {
		errs.Handle(fmt.Errorf("force flush: %w", err))
	}
	stopCtx, cancelStop := context.WithTimeout(ctx, 10*time.Second)
	defer cancelStop()
	if err := provider.Shutdown(stopCtx); err != nil {
		errs.Handle(fmt.Errorf("shutdown: %w", err))
	}
	return result{
		TraceID: agent.SpanContext().TraceID().String(),
		AgentID: agent.SpanContext().SpanID().String(),
		ChatID:  chat.SpanContext().SpanID().String(),
		ToolID:  tool.SpanContext().SpanID().String(),
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "otel_go:", err)
	os.Exit(2)
}
