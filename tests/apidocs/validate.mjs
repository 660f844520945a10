// Validates an API document with the parsers other tools use:
//   node validate.mjs openapi FILE    (@apidevtools/swagger-parser, OpenAPI 3.1)
//   node validate.mjs asyncapi FILE   (@asyncapi/parser, AsyncAPI 3.0)
// Prints one line per problem and exits 1 when there is any; exits 0 and
// prints "FILE: valid <kind> <version>" otherwise. AsyncAPI diagnostics of
// severity warning or worse count as problems (the parser's own ruleset).
import { readFile } from 'node:fs/promises';

const [kind, file] = process.argv.slice(2);
if (!kind || !file) {
  console.error('usage: node validate.mjs openapi|asyncapi FILE');
  process.exit(2);
}
const text = await readFile(file, 'utf8');

if (kind === 'openapi') {
  const { default: SwaggerParser } = await import('@apidevtools/swagger-parser');
  try {
    const api = await SwaggerParser.validate(JSON.parse(text));
    console.log(`${file}: valid openapi ${api.openapi}`);
  } catch (e) {
    console.log(`${file}: ${e.message}`);
    process.exit(1);
  }
} else if (kind === 'asyncapi') {
  const { Parser, DiagnosticSeverity } = await import('@asyncapi/parser');
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(text);
  const bad = diagnostics.filter((d) => d.severity <= DiagnosticSeverity.Warning);
  for (const d of bad) {
    console.log(`${file}: ${d.code} at ${d.path.join('.')}: ${d.message}`);
  }
  if (!document || bad.length > 0) process.exit(1);
  console.log(`${file}: valid asyncapi ${document.version()} ` +
    `(${document.channels().length} channels, ${document.operations().length} operations, ` +
    `${document.allMessages().length} messages)`);
} else {
  console.error(`unknown kind ${kind}`);
  process.exit(2);
}
