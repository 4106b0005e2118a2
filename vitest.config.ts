import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    restoreMocks: true,
    unstubEnvs: true,
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], setupFiles: ["test/helpers/test-hooks-setup.ts"] },
      },
      {
        // The test world's own parts, without a running world: stand-ins on the host's python3,
        // the Hub stand-in started in-process.
        extends: true,
        test: { name: "world", include: ["test/world/**/*.test.ts"], testTimeout: 120_000 },
      },
      {
        // The downloader and the Hub client in-process against the world's Hub stand-in, started
        // in-process on ephemeral ports (no Docker world).
        extends: true,
        test: { name: "hub", include: ["test/hub/**/*.test.ts"], testTimeout: 60_000, setupFiles: ["test/helpers/test-hooks-setup.ts"] },
      },
      {
        // The CLI as a subprocess, without the test world.
        extends: true,
        test: { name: "cli", include: ["test/cli/**/*.test.ts"], testTimeout: 60_000 },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/helpers/global-setup.ts"],
          // Around every test: the engine answers and is watched; no container before or after.
          setupFiles: ["test/helpers/integration-setup.ts"],
          testTimeout: 300_000,
          hookTimeout: 900_000,
          // One Docker engine, one registry, one Hub stand-in: files run one after another.
          fileParallelism: false,
          // No retries: a retry would let a flaky test pass and hide what makes it flaky.
        },
      },
    ],
  },
});
