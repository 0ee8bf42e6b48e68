// Per-invocation traces with OpenTelemetry: one root span per invocation (or deploy) and a
// child span per phase. Spans always go to the local store (SQLite, `faasnap trace <id>`); with
// an OTLP endpoint configured they are also exported over OTLP/HTTP in batches, beside an HTTP
// server span per API request (@fastify/otel), to which the invocation or deploy it started
// links. The HTTP spans are not stored locally: the store keeps what `faasnap trace` shows.

import { FastifyOtelInstrumentation } from '@fastify/otel';
import {
  context,
  trace,
  SpanStatusCode,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  SimpleSpanProcessor,
  TracerProvider,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { FastifyPluginCallback } from 'fastify';
import type { PhaseTiming } from '../common/phases.js';
import type { SpanRow, SpanStore } from './store/spans.js';

const hrToUs = (t: [number, number]): number => t[0] * 1e6 + t[1] / 1e3;

/** The tracer of invocation and deploy traces (HTTP spans come from @fastify/otel's). */
const TRACER = 'faasnap-daemon';

/** Writes finished invocation and deploy spans into the local span table. */
export class LocalSpanExporter implements SpanExporter {
  constructor(private readonly spans: SpanStore) {}

  export(spans: ReadableSpan[], done: (r: { code: number; error?: Error }) => void): void {
    try {
      this.spans.insert(
        spans
          .filter((s) => s.instrumentationScope.name === TRACER)
          .map((s): SpanRow => ({
            traceId: s.spanContext().traceId,
            spanId: s.spanContext().spanId,
            parentId: s.parentSpanContext?.spanId ?? null,
            name: s.name,
            startUs: hrToUs(s.startTime),
            endUs: hrToUs(s.endTime),
            attributes: { ...s.attributes },
            error: s.status.code === SpanStatusCode.ERROR ? (s.status.message ?? 'error') : null,
          })),
      );
      done({ code: 0 });
    } catch (e) {
      done({ code: 1, error: e as Error });
    }
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** One trace in progress: phases become child spans of the root span. */
export class TraceRecorder {
  readonly phases: PhaseTiming[] = [];
  /** The first phase that failed: what an error is reported against (teardown runs after). */
  failedPhase: string | undefined;
  private readonly t0 = performance.now();

  constructor(
    private readonly tracer: Tracer,
    readonly root: Span,
  ) {}

  get traceId(): string {
    return this.root.spanContext().traceId;
  }

  /** Runs `fn` as the phase `name` (a child span; failures mark the span as an error). */
  async phase<T>(
    name: string,
    fn: () => Promise<T>,
    attributes: Record<string, unknown> = {},
  ): Promise<T> {
    const start = performance.now();
    const span = this.child(name, start, attributes);
    try {
      return await fn();
    } catch (e) {
      this.failedPhase ??= name;
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: e instanceof Error ? e.message : String(e),
      });
      throw e;
    } finally {
      const end = performance.now();
      span.end(epochMs(end));
      this.phases.push({ name, startMs: start - this.t0, durationMs: end - start });
    }
  }

  /** Records a phase measured elsewhere (e.g. inside the VMM process), nested under `parent`. */
  record(
    name: string,
    startPerf: number,
    durationMs: number,
    attributes: Record<string, unknown> = {},
  ): void {
    const span = this.child(name, startPerf, attributes);
    span.end(epochMs(startPerf + durationMs));
    this.phases.push({ name, startMs: startPerf - this.t0, durationMs });
  }

  elapsedMs(): number {
    return performance.now() - this.t0;
  }

  end(error?: { code: string; message: string }): void {
    if (error) {
      this.root.setAttribute('faasnap.error.code', error.code);
      this.root.setStatus({
        code: SpanStatusCode.ERROR,
        message: `${error.code}: ${error.message}`,
      });
    }
    this.root.end();
  }

  private child(name: string, startPerf: number, attributes: Record<string, unknown>): Span {
    const ctx = trace.setSpan(context.active(), this.root);
    return this.tracer.startSpan(
      name,
      { startTime: epochMs(startPerf), attributes: flatten(attributes) },
      ctx,
    );
  }
}

function epochMs(perf: number): number {
  return performance.timeOrigin + perf;
}

function flatten(a: Record<string, unknown>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(a)) {
    if (v === undefined || v === null) continue;
    out[k] =
      typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'
        ? v
        : JSON.stringify(v);
  }
  return out;
}

export interface TracesOptions {
  /** OTLP/HTTP endpoint that also receives every span (and the HTTP server spans). */
  otlpUrl?: string | undefined;
  /** The daemon's version (the Resource's service.version). */
  version: string;
}

export class Traces {
  private readonly provider: TracerProvider;
  private readonly tracer: Tracer;
  private readonly exporting: boolean;

  constructor(spans: SpanStore, opts: TracesOptions) {
    const processors: SpanProcessor[] = [
      new SimpleSpanProcessor({ exporter: new LocalSpanExporter(spans) }),
    ];
    if (opts.otlpUrl)
      processors.push(
        new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: opts.otlpUrl }) }),
      );
    this.exporting = !!opts.otlpUrl;
    this.provider = new TracerProvider({
      resource: resourceFromAttributes({
        [ATTR_SERVICE_NAME]: 'faasnap-daemon',
        [ATTR_SERVICE_VERSION]: opts.version,
      }),
      spanProcessors: processors,
    });
    this.tracer = this.provider.getTracer(TRACER, opts.version);
  }

  /**
   * The fastify plugin that makes an HTTP server span per request, or undefined without an
   * OTLP endpoint: only an exporter would read them, so without one the API path does no work.
   */
  httpSpans(): FastifyPluginCallback | undefined {
    if (!this.exporting) return undefined;
    // Request spans only: a span per lifecycle hook and handler would outnumber the phases.
    const instrumentation = new FastifyOtelInstrumentation({
      instrumentHooks: false,
      instrumentHandler: false,
    });
    instrumentation.setTracerProvider(this.provider);
    return instrumentation.plugin();
  }

  /** Starts a trace; `link` names the HTTP request span that started it, if there is one. */
  start(name: string, attributes: Record<string, unknown> = {}, link?: SpanContext): TraceRecorder {
    // A trace of its own even inside a request's context: the request span is linked, not parent.
    const root = this.tracer.startSpan(name, {
      root: true,
      startTime: epochMs(performance.now()),
      attributes: flatten(attributes),
      ...(link && { links: [{ context: link }] }),
    });
    return new TraceRecorder(this.tracer, root);
  }

  async close(): Promise<void> {
    await this.provider.shutdown();
  }
}
