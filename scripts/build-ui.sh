#!/usr/bin/env bash
# Builds the web dashboard (ui/) into dist/ui/, which the daemon serves at /ui/: a type check,
# then one esbuild bundle (app.js + app.css, Preact and uPlot included; no CDN at run time) beside
# index.html. The dashboard's unit tests are bundled for Node into dist/test/ui-unit/, where the
# test run's glob (dist/**/*.test.js) finds them. Same sources, same output: nothing is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

tsc -p ui/tsconfig.json
rm -rf dist/ui dist/test/ui-unit
esbuild ui/src/main.tsx --bundle --format=esm --target=es2022 --minify --sourcemap \
  --jsx=automatic --jsx-import-source=preact --entry-names=app --outdir=dist/ui --log-level=warning
cp ui/index.html dist/ui/index.html
esbuild 'ui/src/**/*.test.ts' --bundle --platform=node --format=esm --target=node24 \
  --outdir=dist/test/ui-unit --log-level=warning
