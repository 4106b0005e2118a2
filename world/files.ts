/** Listing the source trees the world builds from (image folders, repository trees). */
import { access, readdir, stat } from "node:fs/promises";
import path from "node:path";

export interface TreeFile {
  /** Path relative to the walked folder, with `/`. */
  name: string;
  /** Absolute path on disk. */
  source: string;
  /** Permission bits (the executable bit matters to images and git). */
  mode: number;
}

/** Byproducts of running the Python stand-ins locally: never part of an image or a repository. */
const SKIPPED = new Set(["__pycache__", ".pytest_cache", ".mypy_cache", ".DS_Store", ".git"]);

/** Regular files below `dir`, sorted by name, symlinks followed. A missing `dir` has none. */
export async function walk(dir: string): Promise<TreeFile[]> {
  const files = await walkInto(dir, "");
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function walkInto(dir: string, prefix: string): Promise<TreeFile[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const files: TreeFile[] = [];
  for (const entry of entries) {
    if (SKIPPED.has(entry.name) || entry.name.endsWith(".pyc")) continue;
    const source = path.join(dir, entry.name);
    const name = prefix ? `${prefix}/${entry.name}` : entry.name;
    const info = await stat(source);
    if (info.isDirectory()) files.push(...(await walkInto(source, name)));
    else if (info.isFile()) files.push({ name, source, mode: info.mode & 0o777 });
  }
  return files;
}

/** Whether a path exists (any kind of file). */
export async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}
