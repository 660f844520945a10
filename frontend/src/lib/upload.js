// Upload targets from an OpenAPI document: every operation that takes a file,
// either as the whole body (a binary media type such as image/png) or as a
// multipart form field of format "binary". Nothing here knows the images
// system; any route of that kind gets the upload view.
import { operations, resolveRef } from './openapi.js';

const JSONISH = /^application\/([\w.+-]*\+)?json\b|^application\/x-www-form-urlencoded$|^text\//;

// [{ method, path, summary, rawTypes, field, fieldTypes, resultPath }]
// rawTypes: media types the body may be sent as, raw; field: the multipart
// field that carries a file (or null); resultPath: a GET route "<path>/{x}"
// of the same document where the result of an upload can be fetched.
export function uploadTargets(doc) {
  const out = [];
  const ops = operations(doc);
  const gets = ops.filter((o) => o.method === 'GET').map((o) => o.path);
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item || {})) {
      if (!op || typeof op !== 'object' || method === 'parameters') continue;
      const rb = resolveRef(doc, op.requestBody);
      if (!rb || !rb.content) continue;
      const rawTypes = [];
      let field = null;
      let fieldTypes = [];
      for (const [type, media] of Object.entries(rb.content)) {
        if (type === 'multipart/form-data') {
          const schema = resolveRef(doc, media && media.schema) || {};
          for (const [name, sub] of Object.entries(schema.properties || {})) {
            const s = resolveRef(doc, sub) || {};
            if (s.format === 'binary' || s.contentEncoding === 'binary') {
              field = name;
              fieldTypes = typeof s.contentMediaType === 'string' ? [s.contentMediaType] : [];
              break;
            }
          }
        } else if (!JSONISH.test(type)) {
          rawTypes.push(type);
        }
      }
      if (!rawTypes.length && !field) continue;
      const base = path.replace(/\/+$/, '');
      const resultPath = gets.find((g) => g.startsWith(base + '/{') && /^\{[^}/]+\}$/.test(g.slice(base.length + 1))) || null;
      out.push({
        method: method.toUpperCase(),
        path,
        summary: op.summary || '',
        rawTypes,
        field,
        fieldTypes: fieldTypes.length ? fieldTypes : rawTypes,
        resultPath,
      });
    }
  }
  return out;
}

// The file input's accept attribute for a target.
export function acceptOf(target) {
  const types = target.fieldTypes.length ? target.fieldTypes : target.rawTypes;
  return types.join(',');
}

// The URL of an upload's result: resultPath with the id filled in.
export function resultUrl(base, target, id) {
  if (!target.resultPath || !id) return null;
  return base + target.resultPath.replace(/\{[^}]+\}/, encodeURIComponent(id));
}

// Sends file to the target with XMLHttpRequest (fetch has no upload
// progress): multipart when the route takes a form field, else the raw bytes
// with the file's own type. onProgress(loaded, total). Resolves with
// { status, json, text }.
export function uploadFile(base, target, file, { onProgress = () => {}, XHR = globalThis.XMLHttpRequest } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XHR();
    xhr.open(target.method, base + target.path);
    xhr.responseType = 'text';
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let json;
      try {
        json = JSON.parse(xhr.responseText);
      } catch {
        json = undefined;
      }
      resolve({ status: xhr.status, json, text: xhr.responseText });
    };
    xhr.onerror = () => reject(new Error('the upload did not reach the server'));
    xhr.onabort = () => reject(new Error('the upload was cancelled'));
    let body;
    if (target.field) {
      body = new FormData();
      body.append(target.field, file, file.name);
    } else {
      body = file;
      xhr.setRequestHeader('Content-Type', file.type || target.rawTypes[0] || 'application/octet-stream');
    }
    xhr.send(body);
  });
}
