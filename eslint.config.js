// typescript-eslint's type-checked recommended rules over all TypeScript. lua-src is checked
// against tstl.json (Lua's types), the Node side and the tests against their own tsconfig.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "bench/results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ["lua-src/**/*.ts"],
    languageOptions: { parserOptions: { project: ["./tstl.json"], tsconfigRootDir: import.meta.dirname } },
  },
  {
    files: ["node-src/**/*.ts", "harness/**/*.ts", "bench/**/*.ts", "test/**/*.ts", "vitest.config.ts"],
    languageOptions: { parserOptions: { project: ["./tsconfig.json", "./test/tsconfig.json"], tsconfigRootDir: import.meta.dirname } },
  },
  { files: ["eslint.config.js"], ...tseslint.configs.disableTypeChecked },
);
