// setupFiles of the projects that call the product in-process: its test hooks read the
// environment main() would give them, here the (live, stubbable) process.env.
import { configureTestHooks } from "../../src/common/test-hooks.ts";

configureTestHooks(process.env);
