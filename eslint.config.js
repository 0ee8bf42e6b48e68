// Lint config: typescript-eslint's type-aware recommended rules; formatting is prettier's job.
// The layers (docs/architecture.md) are enforced here: a folder may import only the folders
// below it, so an import from a lower layer into a higher one fails `npm run lint`.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

// Top-level folders, each with the folders it must not import. The line, lowest first:
// common → native → vmm → loader → restore → process → daemon / cli / bench, with guest/ (the
// micro-guest launcher and the agent's client) on vmm and client/ (the daemon's HTTP client) on
// common; lab/ (the hardware-KVM lab) is a tool beside bench/, on common and guest/ only.
// test/ is support for the tests; only *.test.ts files may import it. ui/ (the dashboard, browser
// code) talks to the daemon over HTTP only: it may take the API's types from daemon/ (import
// type, checked below) and imports no other folder, and no folder imports it.
const TOOLS = ['daemon', 'cli', 'bench', 'lab'];
const ABOVE_VMM = ['loader', 'restore', 'process', 'guest', 'client', ...TOOLS];
const FORBIDDEN = {
  common: ['native', 'vmm', ...ABOVE_VMM],
  native: ['vmm', ...ABOVE_VMM],
  vmm: ABOVE_VMM,
  loader: ['restore', 'process', 'guest', 'client', ...TOOLS],
  restore: ['process', 'guest', 'client', ...TOOLS],
  process: ['guest', 'client', ...TOOLS],
  guest: ['loader', 'restore', 'process', 'client', ...TOOLS],
  client: ['native', 'vmm', ...ABOVE_VMM.filter((d) => d !== 'client')],
  daemon: ['client', 'cli', 'bench', 'lab'],
  cli: [],
  bench: ['cli', 'lab'],
  lab: ['native', 'vmm', 'loader', 'restore', 'process', 'client', 'daemon', 'cli', 'bench'],
  ui: ['common', 'native', 'vmm', ...ABOVE_VMM.filter((d) => d !== 'daemon')],
};

function layerRule(folder, forbidden) {
  // Relative specifiers only (the project has no path aliases); the top-level folder names are
  // not reused by any subfolder, so `(../)+name/` names that top-level folder.
  const patterns = forbidden.map((name) => ({
    regex: `^(\\./)?(\\.\\./)+${name}/`,
    message: `layering: ${folder}/ must not import ${name}/ (docs/architecture.md, "Layers")`,
  }));
  return patterns.length ? { 'no-restricted-imports': ['error', { patterns }] } : {};
}

const layers = Object.entries(FORBIDDEN).flatMap(([folder, own]) => {
  const forbidden = folder === 'ui' ? own : [...own, 'ui'];
  return [
    {
      files: [`${folder}/**/*.ts`, `${folder}/**/*.tsx`],
      ignores: [`${folder}/**/*.test.ts`],
      rules: layerRule(folder, [...forbidden, 'test']),
    },
    { files: [`${folder}/**/*.test.ts`], rules: layerRule(folder, forbidden) },
  ];
});

export default tseslint.config(
  { ignores: ['dist/', 'native/build/', 'guest/micro/build/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  ...layers,
  {
    // The dashboard's bundle must not pull in the daemon: types only.
    files: ['ui/**/*.ts', 'ui/**/*.tsx'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(\\./)?(\\.\\./)+daemon/',
              allowTypeImports: true,
              message: 'ui/ takes only types from daemon/ (import type)',
            },
          ],
        },
      ],
    },
  },
);
