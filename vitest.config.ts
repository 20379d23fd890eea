import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // Integration files share one memcached and reset it with flush_all: one file at a time.
    fileParallelism: false,
    testTimeout: 30000,
    hookTimeout: 60000,
    reporters: ["default"],
  },
});
