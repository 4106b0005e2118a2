import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The gateway's own Prometheus metrics, served at its /metrics beside Triton's (port 8002):
 * what Triton cannot see, namely the OpenAI requests, their refusals, the tokens as the
 * model's tokenizer counts them and the time to the first token a client saw. One registry per
 * gateway, so two gateways in one process (tests) do not share counters.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: "llama3_trt_gateway_requests_total",
    help: "OpenAI API requests answered, by endpoint and HTTP status",
    labelNames: ["endpoint", "status"] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: "llama3_trt_gateway_errors_total",
    help: "Requests that failed, by endpoint and kind (refused, unauthorized, triton, disconnected)",
    labelNames: ["endpoint", "kind"] as const,
    registers: [this.registry],
  });
  readonly promptTokens = new Counter({
    name: "llama3_trt_gateway_prompt_tokens_total",
    help: "Prompt tokens sent to the model, counted with its tokenizer",
    registers: [this.registry],
  });
  readonly completionTokens = new Counter({
    name: "llama3_trt_gateway_completion_tokens_total",
    help: "Tokens of the answers returned, counted with the model's tokenizer",
    registers: [this.registry],
  });
  readonly timeToFirstToken = new Histogram({
    name: "llama3_trt_gateway_time_to_first_token_seconds",
    help: "From the request's arrival to the first token of the answer leaving the gateway",
    labelNames: ["endpoint"] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "llama3_trt_gateway_request_duration_seconds",
    help: "From the request's arrival to the end of the answer",
    labelNames: ["endpoint"] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: "llama3_trt_gateway_requests_in_flight",
    help: "Generation requests being answered now",
    registers: [this.registry],
  });
}
