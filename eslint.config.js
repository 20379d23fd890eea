// typescript-eslint's type-checked recommended rules over all TypeScript. lua-src is checked
// against tstl.json (Lua's types), page against page/tsconfig.json (the browser's), the Node side
// and the tests against their own tsconfig.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "bench/results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    rules: {
      // `async` marks a method that implements a Promise-returning interface; Promise.resolve() in its place adds noise, not safety.
      "@typescript-eslint/require-await": "off",
      // A leading underscore names what a signature needs but the body does not use (Lua callbacks, `for (const _ in t)`).
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["lua-src/**/*.ts"],
    languageOptions: { parserOptions: { project: ["./tstl.json"], tsconfigRootDir: import.meta.dirname } },
    // require() here is Lua's, which TypeScriptToLua emits as is.
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // The status page's code: the browser's types (page/tsconfig.json).
    files: ["page/**/*.ts"],
    languageOptions: { parserOptions: { project: ["./page/tsconfig.json"], tsconfigRootDir: import.meta.dirname } },
  },
  {
    files: ["node-src/**/*.ts", "harness/**/*.ts", "bench/**/*.ts", "test/**/*.ts", "vitest.config.ts"],
    languageOptions: {
      parserOptions: { project: ["./tsconfig.json", "./test/tsconfig.json"], tsconfigRootDir: import.meta.dirname },
    },
  },
  { files: ["eslint.config.js"], ...tseslint.configs.disableTypeChecked },
);
