// A self-contained HTML page listing the API from its OpenAPI document (no external assets:
// the daemon runs on machines without internet access).

interface Doc {
  info: { title: string; version: string; description?: string };
  paths: Record<
    string,
    Record<
      string,
      {
        summary?: string;
        description?: string;
        tags?: string[];
        responses?: Record<string, unknown>;
      }
    >
  >;
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function docsPage(doc: Doc): string {
  const rows: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const codes = Object.keys(op.responses ?? {}).join(' ');
      rows.push(
        `<tr><td><code>${method.toUpperCase()}</code></td><td><code>${esc(path)}</code></td><td>${esc(op.summary ?? '')}${
          op.description ? `<br><small>${esc(op.description)}</small>` : ''
        }</td><td>${esc(codes)}</td></tr>`,
      );
    }
  }
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(doc.info.title)}</title>
<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top;text-align:left}</style>
</head><body><h1>${esc(doc.info.title)} ${esc(doc.info.version)}</h1><p>${esc(doc.info.description ?? '')}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a>. Error codes: docs/errors.md.</p>
<table><tr><th>method</th><th>path</th><th>what</th><th>responses</th></tr>${rows.join('\n')}</table></body></html>`;
}
