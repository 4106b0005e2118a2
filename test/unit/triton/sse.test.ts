import { describe, expect, it } from "vitest";
import { SseParser, timedEvents } from "../../../src/triton/sse.ts";

const stream =
  'data: {"text_output": "Un"}\n\n' +
  ": a comment\n" +
  'data: {"text_output": ", deux"}\r\n\r\n' +
  "event: message\nid: 3\n" +
  'data: {"text_output":\ndata:  "trois"}\n\n' +
  'data: {"error": "boom"}\n\n';

const expected = ['{"text_output": "Un"}', '{"text_output": ", deux"}', '{"text_output":\n "trois"}', '{"error": "boom"}'];

describe("Server-Sent Events", () => {
  it("yields the data of each event, joining data lines and skipping comments and other fields", () => {
    const parser = new SseParser();
    expect([...parser.push(stream), ...parser.end()]).toEqual(expected);
  });

  it("gives the same events however the stream is cut into chunks", () => {
    for (let cut = 1; cut < stream.length; cut++) {
      for (const size of [1, 3, cut]) {
        const parser = new SseParser();
        const events: string[] = [];
        for (let i = 0; i < stream.length; i += size) events.push(...parser.push(stream.slice(i, i + size)));
        events.push(...parser.end());
        expect(events, `chunks of ${size}`).toEqual(expected);
      }
    }
  });

  it("keeps a last event that no blank line closed, and ignores an empty stream", () => {
    const parser = new SseParser();
    expect(parser.push('data: {"a":1}')).toEqual([]);
    expect(parser.end()).toEqual(['{"a":1}']);
    expect(new SseParser().end()).toEqual([]);
  });
});

describe("timedEvents", () => {
  async function* chunks(parts: readonly string[]) {
    for (const p of parts) yield new TextEncoder().encode(p);
  }
  /** A clock that says 10, 20, 30 … one tick per chunk read. */
  const ticking = () => {
    let t = 0;
    return () => (t += 10);
  };

  it("stamps each event with the arrival of the chunk that held its first byte", async () => {
    const got: { data: string; at: number }[] = [];
    // Event a arrives whole in chunk 1; b starts in chunk 1 and ends in chunk 3; c is whole in chunk 3.
    for await (const e of timedEvents(chunks(["data: a\n\ndata: b", "b", "b\n\ndata: c\n\n"]), ticking())) got.push(e);
    expect(got).toEqual([
      { data: "a", at: 10 },
      { data: "bbb", at: 10 },
      { data: "c", at: 30 },
    ]);
  });

  it("an event whose first line ended in one chunk and whose blank line came in the next counts from the first", async () => {
    const got: { data: string; at: number }[] = [];
    for await (const e of timedEvents(chunks(["data: x\n", "\n", "data: y\n\n"]), ticking())) got.push(e);
    expect(got).toEqual([
      { data: "x", at: 10 },
      { data: "y", at: 30 },
    ]);
  });

  it("keeps a last event with no closing blank line, stamped when it started", async () => {
    const got: { data: string; at: number }[] = [];
    for await (const e of timedEvents(chunks(["data: [DO", "NE]"]), ticking())) got.push(e);
    expect(got).toEqual([{ data: "[DONE]", at: 10 }]);
  });
});
