import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    restoreMocks: true,
    unstubEnvs: true,
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"] },
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
          testTimeout: 300_000,
          hookTimeout: 900_000,
          // One Docker engine, one registry, one Hub stand-in: files run one after another.
          fileParallelism: false,
          retry: process.env.CI ? 1 : 0,
        },
      },
    ],
  },
});
