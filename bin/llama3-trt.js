#!/usr/bin/env node
// V8's compile cache (Node >= 22.1): the bundle's bytecode is kept on disk after the first run,
// so every later start skips compiling it (measured by bench/noop-build.ts).
import module from "node:module";
module.enableCompileCache?.();
import("../dist/cli/main.js").then((m) => m.main(process.argv));
