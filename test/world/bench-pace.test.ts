/**
 * The Triton stand-in's pace for `bench` (knobs ttftMs, itlMs, maxInFlight) and its min_length,
 * on the host's python3: how many requests it holds at once, the deadlines it streams on, the
 * knobs it refuses, and an end token masked until min_length. (Served for real in its image:
 * test/integration/bench.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { py } from "../helpers/standins.ts";
import { tempDir } from "../helpers/tmp.ts";

async function python(code: string): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
  using dir = tempDir();
  return await py(["-c", code], { cwd: dir.path });
}

const prelude = `
import json, time
from llama3_trt_standin import record, textgen
from llama3_trt_standin.triton.server import Pace
class M:  # a loaded tensorrt_llm model, as repository.load leaves it
    ready = True
    def __init__(self, batch): self.info = {"engine_config": {"build_config": {"max_batch_size": batch}}}
def pace(knobs, models=None):
    return Pace(record.parse_behaviour("tritonserver", json.dumps({"behaviour": knobs}).encode()), models or {})
`;

describe("the Triton stand-in's pace", () => {
  it("holds maxInFlight requests at once, else the engine's max_batch_size; unpaced it keeps its 2 ms between events", async () => {
    const r = await python(`${prelude}
print(json.dumps([pace({"maxInFlight": 3, "ttftMs": 200, "itlMs": 20}, {"tensorrt_llm": M(8)}).__dict__.get("slots_total"),
                  pace({"ttftMs": 200}, {"tensorrt_llm": M(8)}).slots_total,
                  [pace({}).paced, pace({}).itl, pace({"itlMs": 20}).paced, pace({"itlMs": 20}).itl, pace({"ttftMs": 150}).ttft]]))
`);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([3, 8, [false, 0.002, true, 0.02, 0.15]]);
  });

  it("streams on deadlines from the slot's start: token i not before ttft + i * itl", async () => {
    const r = await python(`${prelude}
p = pace({"ttftMs": 100, "itlMs": 30})
start = time.monotonic()
at = []
for i in range(5):
    p.wait_until(start, i)
    at.append(time.monotonic() - start)
print(json.dumps(at))
`);
    expect(r.exitCode, r.stderr).toBe(0);
    const at = JSON.parse(r.stdout) as number[];
    // Never early (a sleep can only be late, and lateness does not add up: each deadline is from the start).
    at.forEach((t, i) => expect(t).toBeGreaterThanOrEqual(0.1 + i * 0.03 - 0.001));
  });

  it("refuses knobs out of range or of the wrong type (exit 3, naming the knob)", async () => {
    for (const [knobs, message] of [
      [{ maxInFlight: 0 }, "behaviour knob 'maxInFlight' is out of range: 0"],
      [{ ttftMs: -5 }, "behaviour knob 'ttftMs' is out of range: -5"],
      [{ maxInFlight: 1.5 }, "behaviour knob 'maxInFlight' has the wrong type: 1.5"],
      [{ itlMs: true }, "behaviour knob 'itlMs' must be a number, got True"],
    ] as const) {
      const r = await python(`${prelude}
pace(${JSON.stringify(knobs).replace(/true/g, "True")})
`);
      expect(r.exitCode, JSON.stringify(knobs)).toBe(3);
      expect(r.stderr).toContain(message);
    }
  });

  it("min_length masks the end token until that many tokens came (the ensemble's min_length input)", async () => {
    const r = await python(`${prelude}
prompt = textgen.BEGIN_OF_TEXT + textgen.USER_OPENING + "How do I count to nine?" + textgen.EOT + textgen.ASSISTANT_OPENING
short, why = textgen.generate(prompt, 64, end_ids=[128009])
long, why_long = textgen.generate(prompt, 40, end_ids=[128009], min_length=40)
print(json.dumps([len(short), why, len(long), why_long, textgen.EOT in long, long[:len(short)] == short]))
`);
    expect(r.exitCode, r.stderr).toBe(0);
    const [shortLen, why, longLen, whyLong, eotInLong, samePrefix] = JSON.parse(r.stdout) as [number, string, number, string, boolean, boolean];
    expect(why).toBe("end_id");
    expect(shortLen).toBeLessThan(40);
    expect([longLen, whyLong, eotInLong, samePrefix]).toEqual([40, "length", false, true]);
  });
});
