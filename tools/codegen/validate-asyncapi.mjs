// Parses and validates schemas/asyncapi.yaml with @asyncapi/parser (pinned in package-lock.json), as a
// producer team's tooling would: the AsyncAPI 3 schema, the bindings' schemas, the referenced JSON Schema
// files, and the parser's built-in rules. Usage: node validate-asyncapi.mjs <asyncapi.yaml>.
// Prints {"valid": bool, "diagnostics": [{severity, code, message, path}], "summary": {...}} and exits 0.
import { Parser, fromFile } from '@asyncapi/parser';

const SEVERITY = ['error', 'warning', 'info', 'hint'];
const [file] = process.argv.slice(2);
const { document, diagnostics } = await fromFile(new Parser(), file).parse();
const out = {
  valid: Boolean(document),
  diagnostics: diagnostics.map((d) => ({
    severity: SEVERITY[d.severity] ?? String(d.severity),
    code: String(d.code),
    message: d.message,
    path: d.path.join('/'),
  })),
};
if (document) {
  out.summary = {
    version: document.version(),
    servers: document.servers().all().map((s) => ({
      id: s.id(), protocol: s.protocol(), security: s.security().map((r) => r.all().map((x) => x.scheme().type())).flat(),
    })),
    channels: document.channels().all().map((c) => ({ id: c.id(), address: c.address(), bindings: c.bindings().all().map((b) => b.protocol()) })),
    operations: document.operations().all().map((o) => ({
      id: o.id(), action: o.action(), channel: o.channels().all().map((c) => c.id()),
      reply: o.reply() ? o.reply().channel()?.id() ?? null : null,
    })),
    messages: document.components().messages().all().map((m) => ({
      id: m.id(), correlationId: m.hasCorrelationId() ? m.correlationId().location() : null,
      headers: m.hasHeaders() ? Object.keys(m.headers().properties() ?? {}).sort() : [],
      examples: m.examples().all().length,
    })),
  };
}
console.log(JSON.stringify(out, null, 1));
