import { describe, expect, it } from "vitest";
import { SseParser } from "../../../src/triton/sse.ts";

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
