'use strict';
// Query parameters to PostgreSQL text, as node-postgres does (its prepareValue),
// so code moving from pg passes the same values: libregiond sends every
// parameter as text and PostgreSQL casts it to the parameter's type.

/** @returns {string|null} */
function toText(value, where) {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string': return checkNul(value, where);
    case 'number':
    case 'bigint': return String(value);
    case 'boolean': return value ? 'true' : 'false';
    case 'object': break;
    default:
      throw typeError(`${where} is a ${typeof value}: pass a string, number, bigint, boolean, Date, Buffer, ` +
                      'array, object (JSON) or null');
  }
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    return '\\x' + Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw typeError(`${where} is an invalid Date`);
    return value.toISOString();
  }
  if (Array.isArray(value)) return arrayLiteral(value, where);
  if (typeof value.toPostgres === 'function') return toText(value.toPostgres(toText), where);
  return checkNul(JSON.stringify(value), where);
}

// A PostgreSQL array literal: {"a","b\"c",NULL,{...}}
function arrayLiteral(array, where) {
  const parts = array.map((element, i) => {
    if (element === null || element === undefined) return 'NULL';
    if (Array.isArray(element)) return arrayLiteral(element, `${where}[${i}]`);
    const text = toText(element, `${where}[${i}]`);
    return '"' + text.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  });
  return '{' + parts.join(',') + '}';
}

// libregiond takes C strings, and PostgreSQL text cannot hold NUL either.
function checkNul(text, where) {
  if (text.includes('\0')) throw typeError(`${where} contains a NUL character, which PostgreSQL text cannot hold`);
  return text;
}

function typeError(message) {
  const e = new TypeError(message);
  e.code = 'ERR_INVALID_ARG_VALUE';
  return e;
}

/** @param {unknown[]|undefined} params */
function toParams(params) {
  if (params === undefined || params === null) return [];
  if (!Array.isArray(params)) throw typeError('params must be an array (values for $1, $2, ...)');
  const out = new Array(params.length);
  for (let i = 0; i < params.length; i++) out[i] = toText(params[i], `parameter $${i + 1}`);
  return out;
}

module.exports = { toParams, toText, typeError, checkNul };
