import { defineConfig } from "vitest/config";

/**
 * The tests StrykerJS runs against each mutant (`npm run test:mutation`): fast ones only, no
 * Docker world. The downloader's tests start the Hub stand-in in-process on ephemeral ports.
 */
export default defineConfig({
  test: {
    restoreMocks: true,
    unstubEnvs: true,
    include: ["test/unit/**/*.test.ts", "test/hub/**/*.test.ts"],
    setupFiles: ["test/helpers/test-hooks-setup.ts"],
    testTimeout: 30_000,
  },
});
