// Runs the CLI from its TypeScript sources (Node strips the types), so tests never run a stale
// dist/. The shipped bin/ shim is exercised by .ci/run's smoke step.
import { main } from "../../src/cli/main.ts";

await main(process.argv);
