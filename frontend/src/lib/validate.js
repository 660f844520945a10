// JSON Schema validation in the browser, before a request is sent, with Ajv
// (draft 7, the mapper's dialect). Keywords Ajv does not check (formats,
// contentMediaType) are left to the server, which has the last word anyway.
import Ajv from 'ajv';

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, validateSchema: false });
const cache = new WeakMap();

// A compiled validator for schema, or null when Ajv cannot compile it (then
// only the server checks).
export function compile(schema) {
  if (!schema || typeof schema !== 'object') return null;
  if (cache.has(schema)) return cache.get(schema);
  let fn = null;
  try {
    fn = ajv.compile(schema);
  } catch {
    fn = null;
  }
  cache.set(schema, fn);
  return fn;
}

// The problems of value against schema: [{ path, keyword, message }], path
// a JSON pointer ("" for the value itself; a missing property is reported
// at the property's own path). [] when it is valid or cannot be checked.
export function problems(schema, value) {
  const fn = compile(schema);
  if (!fn || fn(value)) return [];
  return fn.errors.map((e) => {
    let path = e.instancePath || '';
    if (e.keyword === 'required' && e.params && e.params.missingProperty) path += '/' + e.params.missingProperty;
    if (e.keyword === 'additionalProperties' && e.params && e.params.additionalProperty) path += '/' + e.params.additionalProperty;
    const where = path || '(root)';
    return { path, keyword: e.keyword, message: `${where}: ${e.keyword}: ${e.message}` };
  });
}
