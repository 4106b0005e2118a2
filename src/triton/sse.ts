/**
 * Server-Sent Events as generate_stream sends them: `data: {json}` lines, an event ending at a
 * blank line. Fed chunks as they arrive (an event may be split anywhere, even inside a line
 * break), it hands back each complete event's data. Comments (`:`) and other fields are ignored.
 */
export class SseParser {
  #buffer = "";
  #data: string[] = [];
  #hasData = false;

  /** Complete events in this chunk and what was buffered before it. */
  push(chunk: string): string[] {
    this.#buffer += chunk;
    const events: string[] = [];
    for (;;) {
      const match = /\r\n|\n|\r/.exec(this.#buffer);
      // A lone \r at the end may be the first half of \r\n: wait for the next chunk.
      if (!match || (match[0] === "\r" && match.index === this.#buffer.length - 1)) break;
      const line = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      const event = this.#line(line);
      if (event !== undefined) events.push(event);
    }
    return events;
  }

  /** Whether part of an event has come (a line, or lines without their closing blank line). */
  get inEvent(): boolean {
    return this.#buffer !== "" || this.#hasData;
  }

  /** At the end of the stream: an event not closed by a blank line still counts. */
  end(): string[] {
    const events = this.#buffer === "" ? [] : this.push("\n");
    const last = this.#line("");
    return last === undefined ? events : [...events, last];
  }

  #line(line: string): string | undefined {
    if (line === "") {
      if (!this.#hasData) return undefined;
      const data = this.#data.join("\n");
      this.#data = [];
      this.#hasData = false;
      return data;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      this.#data.push(value);
      this.#hasData = true;
    }
    return undefined;
  }
}

/** One event's data and when its first byte arrived (`now()`'s clock: monotonic by default). */
export interface TimedEvent {
  readonly data: string;
  readonly at: number;
}

/**
 * The events of a body as they arrive, each stamped with the arrival time of the chunk that
 * held its first byte: what `bench` measures time to first token and inter-token latency by, so
 * an event split over two reads counts from the first.
 */
export async function* timedEvents(body: AsyncIterable<Uint8Array>, now: () => number = () => performance.now()): AsyncGenerator<TimedEvent> {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  let startedAt: number | undefined;
  for await (const chunk of body) {
    const at = now();
    const first = parser.inEvent ? (startedAt ?? at) : at;
    const events = parser.push(decoder.decode(chunk, { stream: true }));
    for (const [i, data] of events.entries()) yield { data, at: i === 0 ? first : at };
    startedAt = parser.inEvent ? (events.length === 0 ? first : at) : undefined;
  }
  const last = decoder.decode();
  const rest = last === "" ? parser.end() : [...parser.push(last), ...parser.end()];
  for (const data of rest) yield { data, at: startedAt ?? now() };
}
