// Forms from an OpenAPI 3.x document: every operation of every path becomes
// a form description (method, path parameters, query parameters, body
// schema). Nothing here knows fpesa's endpoints; a new endpoint in the
// mapper's configuration shows up as one more operation.

import { problems } from './validate.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options'];

// Resolves a local "$ref": "#/a/b" against the document (one level at a time).
export function resolveRef(doc, node, depth = 0) {
  if (!node || typeof node !== 'object' || typeof node.$ref !== 'string' || depth > 20) return node;
  const ref = node.$ref;
  if (!ref.startsWith('#/')) return node;
  let cur = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object' || !(key in cur)) return node;
    cur = cur[key];
  }
  return resolveRef(doc, cur, depth + 1);
}

function typeOf(schema) {
  if (!schema || typeof schema !== 'object') return undefined;
  if (Array.isArray(schema.type)) return schema.type.find((t) => t !== 'null') || schema.type[0];
  if (schema.type) return schema.type;
  if (schema.properties) return 'object';
  if (schema.items) return 'array';
  return undefined;
}

// A value that fits the schema as well as cheaply possible: its example,
// default, const or first enum value; otherwise a skeleton built from its
// properties (every property, so the user sees what may be sent).
export function skeleton(schema, doc = {}, depth = 0) {
  schema = resolveRef(doc, schema);
  if (!schema || typeof schema !== 'object' || depth > 8) return null;
  if ('example' in schema) return schema.example;
  if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
  if ('default' in schema) return schema.default;
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  for (const k of ['oneOf', 'anyOf']) {
    if (Array.isArray(schema[k]) && schema[k].length) return skeleton(schema[k][0], doc, depth + 1);
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length) {
    const parts = schema.allOf.map((s) => skeleton(s, doc, depth + 1));
    if (parts.every((p) => p && typeof p === 'object' && !Array.isArray(p))) return Object.assign({}, ...parts);
    return parts[0];
  }
  switch (typeOf(schema)) {
    case 'object': {
      const out = {};
      for (const [name, sub] of Object.entries(schema.properties || {})) out[name] = skeleton(sub, doc, depth + 1);
      return out;
    }
    case 'array': {
      const n = Number.isInteger(schema.minItems) ? Math.min(schema.minItems, 3) : 0;
      const items = [];
      for (let i = 0; i < n; i++) items.push(skeleton(schema.items, doc, depth + 1));
      return items;
    }
    case 'string':
      return '';
    case 'integer':
    case 'number':
      if (typeof schema.minimum === 'number') return schema.minimum;
      if (typeof schema.exclusiveMinimum === 'number') return schema.exclusiveMinimum + 1;
      return 0;
    case 'boolean':
      return false;
    case 'null':
      return null;
    default:
      return null;
  }
}

// Top-level fields of an object body schema that get an input of their own.
export function bodyFields(schema, doc = {}) {
  schema = resolveRef(doc, schema);
  if (!schema || typeOf(schema) !== 'object' || !schema.properties) return [];
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  return Object.entries(schema.properties).map(([name, sub]) => {
    const s = resolveRef(doc, sub) || {};
    const type = typeOf(s) || 'any';
    return {
      name,
      type,
      required: required.has(name),
      description: s.description || '',
      enum: Array.isArray(s.enum) ? s.enum : null,
      scalar: ['string', 'integer', 'number', 'boolean'].includes(type),
    };
  });
}

function param(doc, p) {
  p = resolveRef(doc, p) || {};
  const schema = resolveRef(doc, p.schema) || {};
  return {
    name: String(p.name || ''),
    in: p.in,
    required: Boolean(p.required) || p.in === 'path',
    description: p.description || schema.description || '',
    schema,
    enum: Array.isArray(schema.enum) ? schema.enum : null,
    pattern: typeof schema.pattern === 'string' ? schema.pattern : '',
  };
}

function jsonBodySchema(doc, op) {
  const rb = resolveRef(doc, op.requestBody);
  if (!rb || !rb.content) return { hasBody: false, schema: null, contentType: null, required: false };
  const types = Object.keys(rb.content);
  const ct = types.find((t) => /^application\/([\w.+-]*\+)?json\b/.test(t)) || types[0];
  return {
    hasBody: true,
    schema: resolveRef(doc, rb.content[ct] && rb.content[ct].schema) || {},
    contentType: ct,
    required: Boolean(rb.required),
  };
}

// [{ id, method, path, summary, pathParams, queryParams, hasBody, bodySchema,
//    contentType, bodyFields, bodyExample, mode }]
export function operations(doc) {
  if (!doc || typeof doc !== 'object' || !doc.paths || typeof doc.paths !== 'object') {
    throw new Error('not an OpenAPI document: no "paths"');
  }
  const ops = [];
  for (const [path, rawItem] of Object.entries(doc.paths)) {
    const item = resolveRef(doc, rawItem) || {};
    const shared = Array.isArray(item.parameters) ? item.parameters : [];
    // Methods in the document's order, which is the configuration's order.
    for (const method of Object.keys(item)) {
      const op = item[method];
      if (!METHODS.includes(method) || !op || typeof op !== 'object') continue;
      const byKey = new Map();
      for (const p of [...shared, ...(Array.isArray(op.parameters) ? op.parameters : [])]) {
        const pp = param(doc, p);
        byKey.set(pp.in + ':' + pp.name, pp);
      }
      // Path parameters named in the template but not declared still get an input.
      for (const m of path.matchAll(/\{([^}]+)\}/g)) {
        if (!byKey.has('path:' + m[1])) byKey.set('path:' + m[1], param(doc, { name: m[1], in: 'path', schema: { type: 'string' } }));
      }
      const params = [...byKey.values()];
      const body = jsonBodySchema(doc, op);
      const example = body.hasBody ? skeleton(body.schema, doc) : null;
      ops.push({
        id: op.operationId || method + ' ' + path,
        method: method.toUpperCase(),
        path,
        summary: op.summary || op.description || '',
        mode: op['x-fpesa-mode'] || '',
        live: Boolean(op['x-fpesa-live']),
        pathParams: params.filter((p) => p.in === 'path'),
        queryParams: params.filter((p) => p.in === 'query'),
        hasBody: body.hasBody,
        bodyRequired: body.required,
        bodySchema: body.schema,
        contentType: body.contentType,
        bodyFields: body.hasBody ? bodyFields(body.schema, doc) : [],
        bodyExample: example === null && body.hasBody ? {} : example,
      });
    }
  }
  // Configured endpoints first (they carry x-fpesa-mode), built-ins after.
  return ops
    .map((o, i) => [o, i])
    .sort((a, b) => (a[0].mode ? 0 : 1) - (b[0].mode ? 0 : 1) || a[1] - b[1])
    .map(([o]) => o);
}

// The API base the paths are relative to: the document's first server URL if
// it has one, else the folder the document was loaded from.
export function apiBase(doc, openapiUrl) {
  const server = doc && Array.isArray(doc.servers) && doc.servers[0] && doc.servers[0].url;
  const docUrl = new URL(openapiUrl, globalThis.location ? globalThis.location.href : 'http://localhost/');
  const base = server ? new URL(server, docUrl) : new URL('.', docUrl);
  return base.href.replace(/\/+$/, '');
}

// The request a filled-in form stands for. Throws an Error with `field`
// ({ where, name }) and `fields` (every problem found: { where, name,
// message }) when the form cannot be sent as it is: a missing path
// parameter, text that is not JSON, or a value its JSON Schema refuses
// (checked here, before anything is sent). headers (credentials, say) are
// sent as they are.
export function buildRequest(op, base, { pathValues = {}, queryValues = {}, bodyText = '', headers = {} } = {}) {
  const found = [];
  const fail = () => {
    const e = new Error(found[0].message);
    e.field = { where: found[0].where, name: found[0].name };
    e.fields = found;
    throw e;
  };
  let path = op.path;
  for (const p of op.pathParams) {
    const v = pathValues[p.name];
    if (v === undefined || v === '') {
      found.push({ where: 'path', name: p.name, message: p.name + ' is required' });
      continue;
    }
    for (const pr of problems(p.schema, v)) found.push({ where: 'path', name: p.name, message: p.name + ': ' + pr.keyword + ': ' + pr.message.replace(/^[^:]*: [^:]*: /, '') });
    path = path.split('{' + p.name + '}').join(encodeURIComponent(v));
  }
  const qs = [];
  for (const p of op.queryParams) {
    const v = queryValues[p.name];
    if (v === undefined || v === '') {
      if (p.required) found.push({ where: 'query', name: p.name, message: p.name + ' is required' });
      continue;
    }
    for (const pr of problems(p.schema, v)) found.push({ where: 'query', name: p.name, message: p.name + ': ' + pr.keyword + ': ' + pr.message.replace(/^[^:]*: [^:]*: /, '') });
    qs.push(encodeURIComponent(p.name) + '=' + encodeURIComponent(v));
  }
  const url = base + path + (qs.length ? '?' + qs.join('&') : '');
  const req = { method: op.method, url, headers: { ...headers }, body: undefined };
  if (op.hasBody) {
    const text = bodyText.trim();
    if (text === '' && !op.bodyRequired) {
      if (found.length) fail();
      return req;
    }
    let value;
    try {
      value = JSON.parse(text);
    } catch (err) {
      found.push({ where: 'body', name: null, message: 'the body is not valid JSON: ' + err.message });
      fail();
    }
    const form = op.contentType === 'application/x-www-form-urlencoded';
    if (form) {
      // A form is an object of strings; the editor's other values are sent
      // as their JSON text.
      if (!value || typeof value !== 'object' || Array.isArray(value)) {
        found.push({ where: 'body', name: null, message: 'a form body is an object of fields' });
        fail();
      }
      value = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
    }
    const names = new Set(op.bodyFields.map((f) => f.name));
    for (const pr of problems(op.bodySchema, value)) {
      const first = pr.path.split('/')[1];
      const name = first !== undefined && names.has(first.replace(/~1/g, '/').replace(/~0/g, '~')) ? first : null;
      found.push({ where: 'body', name, message: pr.message });
    }
    req.headers['Content-Type'] = op.contentType || 'application/json';
    req.body = form ? new URLSearchParams(value).toString() : text;
  }
  if (found.length) fail();
  return req;
}

// The request as a curl command line a shell runs as it is (single quotes,
// the URL made absolute against origin).
export function curlOf(req, origin = globalThis.location ? globalThis.location.href : 'http://localhost/') {
  const q = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'";
  const parts = ['curl'];
  if (req.method !== 'GET') parts.push('-X', req.method);
  parts.push(q(new URL(req.url, origin).href));
  for (const [k, v] of Object.entries(req.headers || {})) parts.push('-H', q(k + ': ' + v));
  if (req.body !== undefined && req.body !== null) parts.push('--data-raw', q(req.body));
  return parts.join(' ');
}

function pointerSegments(ptr) {
  if (typeof ptr !== 'string' || ptr === '' || ptr === '/') return [];
  return ptr
    .replace(/^#/, '')
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

// Where a server error belongs on the form: { where: 'query'|'path'|'body',
// name: field name or null (the body as a whole), message }.
// err is the "error" object of an error answer ({code, description, path,
// keyword, in}); its path is a JSON pointer into the body or the query
// string. Without a path, a description starting with "/name:" is used.
export function errorTarget(op, err) {
  if (!err || typeof err !== 'object') return null;
  const message = String(err.description || err.message || 'error ' + (err.code || ''));
  // The mapper words it "query /limit: pattern: ..." or "body /name: ...".
  const lead = /^(query|body|path)\s+(\/[^\s:]*|\(root\))?/.exec(message);
  let ptr = typeof err.path === 'string' ? err.path : null;
  if (ptr === null) {
    const m = /^(?:(?:query|body|path)\s+)?(\/[^\s:]*):/.exec(message);
    ptr = m ? m[1] : '';
  }
  const segs = pointerSegments(ptr);
  const first = segs.length ? segs[0] : null;
  const where = typeof err.in === 'string' ? err.in.toLowerCase() : lead ? lead[1] : null;
  const hasQuery = (n) => op.queryParams.some((p) => p.name === n);
  const hasPath = (n) => op.pathParams.some((p) => p.name === n);
  const hasField = (n) => op.bodyFields.some((f) => f.name === n);

  if (where === 'query' || where === 'args') {
    return { where: 'query', name: first !== null && hasQuery(first) ? first : null, message, ptr };
  }
  if (where === 'path' || where === 'params') {
    return { where: 'path', name: first !== null && hasPath(first) ? first : null, message, ptr };
  }
  if (where === 'body' || where === 'data') {
    return { where: 'body', name: first !== null && hasField(first) ? first : null, message, ptr };
  }
  // No "in": guess from the names the form has.
  if (first !== null) {
    if (op.hasBody && hasField(first)) return { where: 'body', name: first, message, ptr };
    if (hasQuery(first) && !(op.hasBody && !op.queryParams.length)) return { where: 'query', name: first, message, ptr };
    if (hasPath(first)) return { where: 'path', name: first, message, ptr };
  }
  if (op.hasBody) return { where: 'body', name: null, message, ptr };
  if (op.queryParams.length) return { where: 'query', name: null, message, ptr };
  return { where: 'form', name: null, message, ptr };
}

// Reads field `name` of a JSON text for an input; '' when absent or the text
// does not parse.
export function fieldValue(bodyText, name) {
  try {
    const v = JSON.parse(bodyText);
    if (!v || typeof v !== 'object' || Array.isArray(v) || !(name in v)) return '';
    const x = v[name];
    return typeof x === 'string' ? x : JSON.stringify(x);
  } catch {
    return '';
  }
}

// Sets field `name` in a JSON text from an input's text, converted to the
// field's type when it reads as one (so "5" stays a string for a string
// field, but becomes 5 for a number field). Returns the new text, or null
// when the body text is not a JSON object.
export function withField(bodyText, field, input) {
  let obj;
  try {
    obj = bodyText.trim() === '' ? {} : JSON.parse(bodyText);
  } catch {
    return null;
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return null;
  let value = input;
  if (field.type !== 'string') {
    try {
      value = JSON.parse(input);
    } catch {
      value = input;
    }
  }
  obj[field.name] = value;
  return JSON.stringify(obj, null, 2);
}
