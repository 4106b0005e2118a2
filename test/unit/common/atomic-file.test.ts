import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { sweepTempFiles, writeFileAtomic, writeFileAtomicWith } from "../../../src/common/atomic-file.ts";
import { tempDir } from "../../helpers/tmp.ts";

/** Hands out the given random parts in order, and fails the test if the writer draws more. */
function randoms(...parts: string[]): (() => string) & { calls: number } {
  const next = () => {
    const part = parts[next.calls++];
    if (part === undefined) throw new Error(`the writer drew random part #${next.calls}, more than the test planned`);
    return part;
  };
  next.calls = 0;
  return next;
}

const planted = "0123456789ab";
const fresh = "fedcba987654";

describe("an atomic write", () => {
  it("replaces the content, with the mode asked for, and leaves no temp file", async () => {
    using dir = tempDir();
    const file = join(dir.path, "owner.json");
    await writeFileAtomic(file, "old");
    await writeFileAtomic(file, new TextEncoder().encode("new"), 0o600);
    expect(readFileSync(file, "utf8")).toBe("new");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir.path)).toEqual(["owner.json"]);
  });

  it("shows the old content under the final name until the complete new file is renamed over it", async () => {
    using dir = tempDir();
    const file = join(dir.path, "state.json");
    writeFileSync(file, "old");
    const seen: { final: string; temps: Record<string, string> }[] = [];
    await writeFileAtomicWith(file, "new content", {
      random: randoms(fresh),
      beforeRename: async () => {
        const temps = readdirSync(dir.path).filter((name) => name !== "state.json");
        seen.push({ final: readFileSync(file, "utf8"), temps: Object.fromEntries(temps.map((t) => [t, readFileSync(join(dir.path, t), "utf8")])) });
      },
    });
    expect(seen).toEqual([{ final: "old", temps: { [`.state.json.${fresh}.tmp`]: "new content" } }]);
    expect(readFileSync(file, "utf8")).toBe("new content");
    expect(readdirSync(dir.path)).toEqual(["state.json"]);
  });

  // Case 40b. Without O_EXCL, open() follows the link and writes into its target, and the rename
  // then puts the link itself under the final name.
  it("never follows a symlink planted at the exact temp name: its target stays untouched and a fresh name is used", async () => {
    using dir = tempDir();
    const victim = join(dir.path, "victim");
    writeFileSync(victim, "untouched, and longer than the data");
    const link = join(dir.path, `.state.json.${planted}.tmp`);
    symlinkSync(victim, link);
    const file = join(dir.path, "state.json");
    writeFileSync(file, "old");
    const random = randoms(planted, fresh);

    await writeFileAtomicWith(file, "data", { random });

    expect(readFileSync(victim, "utf8")).toBe("untouched, and longer than the data");
    expect(lstatSync(file).isSymbolicLink()).toBe(false);
    expect(readFileSync(file, "utf8")).toBe("data");
    // The planted link is left where it was (the sweep at the next start removes it), nothing else.
    expect(readlinkSync(link)).toBe(victim);
    expect(readdirSync(dir.path).sort()).toEqual([`.state.json.${planted}.tmp`, "state.json", "victim"]);
    expect(random.calls).toBe(2);
  });

  it("never creates the target of a dangling symlink planted at the temp name", async () => {
    using dir = tempDir();
    const elsewhere = join(dir.path, "elsewhere");
    mkdirSync(elsewhere);
    const link = join(dir.path, `.state.json.${planted}.tmp`);
    symlinkSync(join(elsewhere, "created-through-the-link"), link);

    await writeFileAtomicWith(join(dir.path, "state.json"), "data", { random: randoms(planted, fresh) });

    expect(readdirSync(elsewhere)).toEqual([]);
    expect(readFileSync(join(dir.path, "state.json"), "utf8")).toBe("data");
    expect(readdirSync(dir.path).sort()).toEqual([`.state.json.${planted}.tmp`, "elsewhere", "state.json"]);
  });

  it("leaves another writer's temp file at the same name alone", async () => {
    using dir = tempDir();
    const other = join(dir.path, `.state.json.${planted}.tmp`);
    writeFileSync(other, "another writer's half");

    await writeFileAtomicWith(join(dir.path, "state.json"), "mine", { random: randoms(planted, fresh) });

    expect(readFileSync(other, "utf8")).toBe("another writer's half");
    expect(readFileSync(join(dir.path, "state.json"), "utf8")).toBe("mine");
  });

  it("gives up after five taken names, leaving the old content and every planted entry as they were", async () => {
    using dir = tempDir();
    const file = join(dir.path, "state.json");
    writeFileSync(file, "old");
    const names = ["000000000001", "000000000002", "000000000003", "000000000004", "000000000005"];
    for (const name of names) writeFileSync(join(dir.path, `.state.json.${name}.tmp`), name);
    // A sixth part is on offer: drawing it would mean a sixth try.
    const random = randoms(...names, fresh);

    await expect(writeFileAtomicWith(file, "new", { random })).rejects.toMatchObject({ code: "EEXIST" });

    expect(random.calls).toBe(5);
    expect(readFileSync(file, "utf8")).toBe("old");
    for (const name of names) expect(readFileSync(join(dir.path, `.state.json.${name}.tmp`), "utf8")).toBe(name);
    expect(readdirSync(dir.path)).toHaveLength(6);
  });

  it("reports any other failure to create the temp file at once, without drawing another name", async () => {
    using dir = tempDir();
    const random = randoms(planted, fresh);
    await expect(writeFileAtomicWith(join(dir.path, "missing", "state.json"), "x", { random })).rejects.toMatchObject({ code: "ENOENT" });
    expect(random.calls).toBe(1);
    expect(readdirSync(dir.path)).toEqual([]);
  });

  it("refuses a random part the sweep would not recognise, writing nothing", async () => {
    using dir = tempDir();
    const file = join(dir.path, "state.json");
    writeFileSync(file, "old");
    for (const bad of ["0123456789a", "0123456789abc", "0123456789AB", "../../x/abcd", "0123456789ag"]) {
      await expect(writeFileAtomicWith(file, "new", { random: () => bad })).rejects.toThrow(
        `The random part of a temp name must be 12 hex digits, got ${JSON.stringify(bad)}`,
      );
    }
    expect(readFileSync(file, "utf8")).toBe("old");
    expect(readdirSync(dir.path)).toEqual(["state.json"]);
  });

  it("removes its temp file and keeps the old content when writing the data fails halfway", async () => {
    using dir = tempDir();
    const file = join(dir.path, "state.json");
    writeFileSync(file, "old");
    // A source that fails after its first chunk, as a full disk would: the temp file is half written.
    async function* failing() {
      yield "half of the";
      throw new Error("no space left");
    }
    await expect(writeFileAtomic(file, failing() as unknown as string)).rejects.toThrow("no space left");
    expect(readFileSync(file, "utf8")).toBe("old");
    expect(readdirSync(dir.path)).toEqual(["state.json"]);
  });

  it("removes its temp file when the rename fails (the final name is a folder)", async () => {
    using dir = tempDir();
    const target = join(dir.path, "state.json");
    mkdirSync(target);
    writeFileSync(join(target, "inside"), "kept");
    await expect(writeFileAtomic(target, "new")).rejects.toMatchObject({ code: "EISDIR" });
    expect(readFileSync(join(target, "inside"), "utf8")).toBe("kept");
    expect(readdirSync(dir.path)).toEqual(["state.json"]);
  });

  it("closes every file and folder it opens, on success and on failure", async () => {
    using dir = tempDir();
    const file = join(dir.path, "state.json");
    mkdirSync(join(dir.path, "a-folder"));
    // Linux: what the process's open descriptors point at; a leak would be one per write, for the life of the CLI.
    const openHere = () =>
      readdirSync("/proc/self/fd").flatMap((fd) => {
        try {
          const target = readlinkSync(`/proc/self/fd/${fd}`);
          return target.startsWith(realpathSync(dir.path)) ? [target] : [];
        } catch {
          return []; // closed meanwhile (the listing's own descriptor)
        }
      });
    for (let i = 0; i < 10; i++) await writeFileAtomic(file, `write ${i}`);
    await expect(writeFileAtomic(join(dir.path, "a-folder"), "x")).rejects.toMatchObject({ code: "EISDIR" });
    expect(openHere()).toEqual([]);
  });
});

describe("the LLAMA3_TRT_TEST_TEMP_RANDOM hook", () => {
  it("names the first temp file of every write, then fresh names follow past a planted link", async () => {
    using dir = tempDir();
    vi.stubEnv("LLAMA3_TRT_TEST_TEMP_RANDOM", planted);
    const file = join(dir.path, "state.json");
    const temps: string[][] = [];
    const beforeRename = async () => void temps.push(readdirSync(dir.path).filter((n) => n.endsWith(".tmp")));

    // Nothing planted: the hook's name is the one used.
    await writeFileAtomicWith(file, "one", { beforeRename });
    expect(temps[0]).toEqual([`.state.json.${planted}.tmp`]);

    // Planted: every later write tries that name first again, and moves on to a fresh one.
    const victim = join(dir.path, "victim");
    writeFileSync(victim, "untouched");
    symlinkSync(victim, join(dir.path, `.state.json.${planted}.tmp`));
    await writeFileAtomicWith(file, "two", { beforeRename });
    await writeFileAtomicWith(file, "three", { beforeRename });
    for (const seen of temps.slice(1)) {
      expect(seen).toHaveLength(2);
      expect(seen.filter((n) => n !== `.state.json.${planted}.tmp`)[0]).toMatch(/^\.state\.json\.[0-9a-f]{12}\.tmp$/);
    }
    expect(temps[1]).not.toEqual(temps[2]);
    expect(readFileSync(victim, "utf8")).toBe("untouched");
    expect(readFileSync(file, "utf8")).toBe("three");
  });

  it("makes the write fail when it is not 12 hex digits, rather than quietly not applying", async () => {
    using dir = tempDir();
    vi.stubEnv("LLAMA3_TRT_TEST_TEMP_RANDOM", "xyz");
    await expect(writeFileAtomic(join(dir.path, "state.json"), "x")).rejects.toThrow('must be 12 hex digits, got "xyz"');
    expect(readdirSync(dir.path)).toEqual([]);
  });
});

// Case 40c. The worker this runs in cannot change its umask, so a child process does it.
describe("file modes", () => {
  it("a file written with the default mode is not group- or world-writable even under umask 0", () => {
    using dir = tempDir();
    const [one, two] = [join(dir.path, "one.json"), join(dir.path, "two.json")];
    const module = new URL("../../../src/common/atomic-file.ts", import.meta.url).href;
    execFileSync(process.execPath, [
      "--input-type=module",
      "-e",
      `process.umask(0);
       const { writeFileAtomic, writeFileAtomicWith } = await import(${JSON.stringify(module)});
       await writeFileAtomic(${JSON.stringify(one)}, "x");
       await writeFileAtomicWith(${JSON.stringify(two)}, "x", {});`,
    ]);
    expect(statSync(one).mode & 0o777).toBe(0o644);
    expect(statSync(two).mode & 0o777).toBe(0o644);
  });
});

describe("sweeping temp files", () => {
  it("removes what killed writers left, and nothing else", async () => {
    using dir = tempDir();
    const strays = [".state.json.0123456789ab.tmp", ".config.pbtxt.ffffffffffff.tmp"];
    for (const name of strays) writeFileSync(join(dir.path, name), "partial");
    const kept = [
      "keep.tmp",
      "state.json",
      "x.state.json.0123456789ab.tmp", // not a dot file
      ".state.json.0123456789ab.tmp.bak", // not ending in .tmp
      ".state.json.0123456789AB.tmp", // not our lowercase hex
      ".state.json.0123456789a.tmp", // one digit short
    ];
    for (const name of kept) writeFileSync(join(dir.path, name), "mine");
    expect((await sweepTempFiles(dir.path)).sort()).toEqual([...strays].sort());
    expect(readdirSync(dir.path).sort()).toEqual([...kept].sort());
  });

  it("removes a planted symlink itself, not its target", async () => {
    using dir = tempDir();
    const victim = join(dir.path, "victim");
    writeFileSync(victim, "untouched");
    symlinkSync(victim, join(dir.path, `.state.json.${planted}.tmp`));
    expect(await sweepTempFiles(dir.path)).toEqual([`.state.json.${planted}.tmp`]);
    expect(readdirSync(dir.path)).toEqual(["victim"]);
    expect(readFileSync(victim, "utf8")).toBe("untouched");
  });

  it("finds nothing in a folder that does not exist yet", async () => {
    using dir = tempDir();
    expect(await sweepTempFiles(join(dir.path, "not-yet"))).toEqual([]);
    expect(existsSync(join(dir.path, "not-yet"))).toBe(false);
  });
});
