/**
 * The Triton stand-in's rules for gRPC inputs and TensorRT-LLM request ids, on the host's python3
 * (no protobuf or grpc there: tensors.py and active.py are plain Python): raw and `contents`
 * encodings, the checks against a model's inputs in the order Triton makes them, the backend's
 * request-id rules, and the registry of active requests that a stop by id works on. (Served for
 * real, over gRPC, in its image: test/integration/standin-grpc.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { py } from "../helpers/standins.ts";
import { tempDir } from "../helpers/tmp.ts";

async function python(code: string): Promise<unknown> {
  using dir = tempDir();
  const r = await py(["-c", code], { cwd: dir.path });
  if (r.exitCode !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

const prelude = `
import json, threading, time
from llama3_trt_standin.triton import tensors as t, active as a
from llama3_trt_standin import record
from llama3_trt_standin.triton.server import Pace
S = [t.InputSpec("text_input", "BYTES", [-1]), t.InputSpec("max_tokens", "INT32", [-1]),
     t.InputSpec("stream", "BOOL", [1], True), t.InputSpec("temperature", "FP32", [1], True),
     t.InputSpec("random_seed", "UINT64", [1], True)]
def err(f):
    try:
        f()
    except a.RequestError as e:
        return str(e)
    return "no error"
W = t.WireInput
`;

describe("the Triton stand-in's gRPC input rules (host python3)", () => {
  it("decodes raw_input_contents (BYTES length-prefixed, little-endian numbers, one-byte BOOL) and contents alike", async () => {
    const out = await python(`${prelude}
raw = [t.encode_raw("BYTES", ["héllo", ""]), t.encode_raw("INT32", [7]), t.encode_raw("BOOL", [True]),
       t.encode_raw("FP32", [0.5]), t.encode_raw("UINT64", [2**64 - 1])]
wires = [W("text_input", "BYTES", [1, 2]), W("max_tokens", "INT32", [1, 1]), W("stream", "BOOL", [1, 1]),
         W("temperature", "FP32", [1, 1]), W("random_seed", "UINT64", [1, 1])]
a1 = t.decode_inputs("ensemble", 64, S, wires, raw)
contents = [W("text_input", "BYTES", [1, 1], {"bytes_contents": [b"hi"]}), W("max_tokens", "INT32", [1, 1], {"int_contents": [7]}),
            W("stream", "BOOL", [1, 1], {"bool_contents": [False]})]
a2 = t.decode_inputs("ensemble", 64, S, contents, [])
print(json.dumps([a1, a2, list(t.encode_raw("BYTES", ["ab"])), list(t.encode_raw("INT32", [1, -1]))]))
`);
    expect(out).toEqual([
      { text_input: ["héllo", ""], max_tokens: [7], stream: [true], temperature: [0.5], random_seed: [2 ** 64] },
      { text_input: ["hi"], max_tokens: [7], stream: [false] },
      [2, 0, 0, 0, 97, 98],
      [1, 0, 0, 0, 255, 255, 255, 255],
    ]);
  });

  it("refuses with Triton's messages: names, required inputs, datatypes, shapes, sizes, contents with raw", async () => {
    const out = await python(`${prelude}
ok_text = W("text_input", "BYTES", [1, 1], {"bytes_contents": [b"hi"]})
ok_max = W("max_tokens", "INT32", [1, 1], {"int_contents": [3]})
cases = [
  [ok_text, ok_max, W("id", "BYTES", [1, 1], {"bytes_contents": [b"7"]})],
  [ok_text],
  [ok_text, W("max_tokens", "INT64", [1, 1], {"int64_contents": [3]})],
  [ok_text, W("max_tokens", "INT32", [1], {"int_contents": [3]})],
  [ok_text, W("max_tokens", "INT32", [1, 0], {"int_contents": []})],
  [ok_text, W("max_tokens", "INT32", [1, 2], {"int_contents": [3]})],
  [ok_text, W("max_tokens", "INT32", [1, 1], {"fp32_contents": [3.0]})],
  [ok_text, W("max_tokens", "INT32", [1, 1])],
  [ok_text, ok_max, W("stream", "BOOL", [1, 2], {"bool_contents": [True, True]})],
  [W("text_input", "BYTES", [2, 1], {"bytes_contents": [b"a", b"b"]}), ok_max],
  [W("text_input", "BYTES", [65, 1], {"bytes_contents": [b"a"] * 65}), ok_max],
]
msgs = [err(lambda c=c: t.decode_inputs("ensemble", 64, S, c, [])) for c in cases]
msgs.append(err(lambda: t.decode_inputs("ensemble", 64, S, [ok_text, W("max_tokens", "INT32", [1, 1])], [t.encode_raw("INT32", [3])])))
msgs.append(err(lambda: t.decode_inputs("ensemble", 64, S, [W("text_input", "BYTES", [1, 1]), W("max_tokens", "INT32", [1, 1])], [b"\\x05\\x00\\x00\\x00ab", t.encode_raw("INT32", [3])])))
msgs.append(err(lambda: t.decode_inputs("ensemble", 64, S, [W("text_input", "BYTES", [1, 1]), W("max_tokens", "INT32", [1, 1])], [t.encode_raw("BYTES", ["a"]), b"\\x03\\x00"])))
msgs.append(err(lambda: t.decode_inputs("ensemble", 64, S, [W("text_input", "BYTES", [1, 1]), W("max_tokens", "INT32", [1, 1])], [t.encode_raw("BYTES", ["a", "b"]), t.encode_raw("INT32", [3])])))
print(json.dumps(msgs))
`);
    expect(out).toEqual([
      "unexpected inference input 'id' for model 'ensemble'",
      "expected 2 inputs but got 1 inputs for model 'ensemble'. Got input(s) ['text_input'], but missing required input(s) ['max_tokens']. Please provide all required input(s).",
      "inference input 'max_tokens' data-type is 'INT64', but model 'ensemble' expects 'INT32'",
      "unexpected shape for input 'max_tokens' for model 'ensemble'. Expected [-1,-1], got [1]",
      "unexpected shape for input 'max_tokens' for model 'ensemble'. Expected [-1,-1], got [1,0]",
      "input byte size mismatch for input 'max_tokens' for model 'ensemble'. Expected 8, got 4",
      "unexpected explicit tensor data for input tensor 'max_tokens' for model 'ensemble' of type 'FP32', expected datatype 'INT32'",
      "unable to find data for input tensor 'max_tokens' for model 'ensemble' in request.",
      "unexpected shape for input 'stream' for model 'ensemble'. Expected [-1,1], got [1,2]",
      "the test world's tritonserver takes batch size 1, got 2 for input 'text_input' of model 'ensemble' (stand-in wording)",
      "inference request batch-size must be <= 64 for 'ensemble'",
      "contents field must not be specified when using raw_input_contents for 'text_input' for model 'ensemble'",
      "incomplete string data for inference input 'text_input' for model 'ensemble', expecting string of length 5 but only 2 bytes available",
      "input byte size mismatch for input 'max_tokens' for model 'ensemble'. Expected 4, got 2",
      "expected 1 string elements for inference input 'text_input' for model 'ensemble', got 2",
    ]);
  });
});

describe("TensorRT-LLM v0.8.0 request ids and stops (host python3)", () => {
  it("parses ids as the backend's uint64: empty is 0, anything else not a decimal uint64 is refused", async () => {
    const out = await python(`${prelude}
print(json.dumps([t.parse_request_id(""), t.parse_request_id("42"), str(t.parse_request_id(str(2**64 - 1))),
                  [err(lambda v=v: t.parse_request_id(v)) for v in ["abc", "-1", "12abc", str(2**64), " 1", "١٢"]]]))
`);
    expect(out).toEqual([0, 42, "18446744073709551615", ["abc", "-1", "12abc", "18446744073709551616", " 1", "١٢"].map((v) => `Invalid requestId, must be uint64_t. Got ${v}`)]);
  });

  it("the registry: a duplicate id is refused, id 0 is never held, a stop needs an active id; a stopped request frees its slot at once and a queued one is dropped", async () => {
    const out = await python(`${prelude}
r = a.Registry()
p = Pace(record.parse_behaviour("tritonserver", json.dumps({"behaviour": {"maxInFlight": 1, "itlMs": 20}}).encode()), {})
j7 = r.admit(7)
msgs = [err(lambda: r.admit(7)), err(lambda: r.stop(0)), err(lambda: r.stop(8))]
z1, z2 = r.admit(0), r.admit(0)  # id 0 (HTTP): many at once, none registered
held = sorted(r.active())
events = []
sent7 = []
t7 = threading.Thread(target=lambda: events.append(("7", a.run(p, r, j7, range(500), lambda i: sent7.append(i) or True, lambda: events.append(("7 final", j7.tokens))))))
t7.start()
while len(sent7) < 3:
    time.sleep(0.005)
j9 = r.admit(9)
t9 = threading.Thread(target=lambda: events.append(("9", a.run(p, r, j9, range(5), lambda i: True, None, lambda: events.append(("9 dropped",))))))
t9.start()
time.sleep(0.1)
queued = (j9.started, sorted(r.active()))
r.stop(9)  # while queued behind 7: dropped
t9.join()
t0 = time.monotonic()
r.stop(7)
t7.join()
freed_in = time.monotonic() - t0
j5 = r.admit(5)
res5 = a.run(p, r, j5, range(4), lambda i: False)  # the client left at once: paced on, nothing sent
print(json.dumps([msgs, held, queued, events, freed_in < 0.5, sorted(r.active()), res5, j5.sent, j5.tokens, j5.client_gone,
                  err(lambda: r.stop(7))]))
`);
    const [msgs, held, queued, events, freedFast, left, res5, sent5, tokens5, gone5, again] = out as unknown[];
    expect(msgs).toEqual([
      "requestId 7 is already in progress, request is ignored.",
      "Cannot send stop request without specifying a request_id",
      "Received stop request for requestId 8 but it's not active (might be completed already).",
    ]);
    expect(held).toEqual([7]);
    expect(queued).toEqual([false, [7, 9]]);
    const ev = events as [string, ...unknown[]][];
    expect(ev.map((e) => e[0])).toEqual(["9 dropped", "9", "7 final", "7"]);
    expect(ev[1]).toEqual(["9", "dropped"]);
    expect(ev[3]).toEqual(["7", "stopped"]);
    expect(ev[2]![1] as number).toBeGreaterThanOrEqual(3);
    expect(ev[2]![1] as number).toBeLessThan(500);
    expect(freedFast).toBe(true);
    expect(left).toEqual([]);
    expect([res5, sent5, tokens5, gone5]).toEqual(["done", 0, 4, true]);
    expect(again).toBe("Received stop request for requestId 7 but it's not active (might be completed already).");
  });
});
