/**
 * Schemas for JSON routes, without a validation library of our own: any of the common shapes.
 *
 * - a function `(value) => value`: throws when invalid; its result is the message (so it may
 *   transform). Returning `true` or `undefined` keeps the parsed value as is; returning `false`
 *   means invalid (an Ajv-compiled validator works as is: its `errors` name the reason).
 * - an object with `parse(value)` (zod, valibot's wrappers, superstruct's `create`-like objects):
 *   throws when invalid, returns the message.
 * - an object with `validate(value)`: Joi's `{ value, error }`, yup's promise (rejects when
 *   invalid), or a boolean.
 *
 * Any of them may return a promise; messages are still handed over in the order they arrived.
 */

export type Schema<T> =
  | ((value: unknown) => T | Promise<T>)
  | { parse(value: unknown): T | Promise<T> }
  | { validate(value: unknown): unknown };

/** The schema's answer: the message to hand over, or why it was refused. */
export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

const MAX_REASON = 300;

function refusal(reason: unknown): { ok: false; reason: string } {
  let text: string;
  if (reason instanceof Error) text = reason.message;
  else if (typeof reason === 'string') text = reason;
  else {
    try {
      text = JSON.stringify(reason) ?? 'invalid message';
    } catch {
      text = 'invalid message';
    }
  }
  if (text === '') text = 'invalid message';
  return { ok: false, reason: text.length > MAX_REASON ? `${text.slice(0, MAX_REASON - 1)}…` : text };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** Ajv attaches `errors` to its validator function. */
function ajvReason(fn: unknown): unknown {
  const errors = (fn as { errors?: { instancePath?: string; message?: string }[] | null }).errors;
  if (!Array.isArray(errors) || errors.length === 0) return 'invalid message';
  return errors.map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`).join('; ');
}

/** Checks that `schema` has one of the accepted shapes (at route creation, naming the option). */
export function assertSchema(schema: unknown): void {
  if (schema === undefined) return;
  if (typeof schema === 'function') return;
  if (schema && typeof schema === 'object') {
    const s = schema as { parse?: unknown; validate?: unknown };
    if (typeof s.parse === 'function' || typeof s.validate === 'function') return;
  }
  throw new TypeError('sockets option "schema" must be a function (value) => value, or an object with parse(value) or validate(value)');
}

/** Runs `schema` on a parsed JSON value. Never throws: a refusal comes back as `{ok: false}`. */
export async function applySchema<T>(schema: Schema<T>, value: unknown): Promise<Checked<T>> {
  try {
    if (typeof schema === 'function') {
      let result: unknown = schema(value);
      if (isThenable(result)) result = await result;
      if (result === false) return refusal(ajvReason(schema));
      if (result === true || result === undefined) return { ok: true, value: value as T };
      return { ok: true, value: result as T };
    }
    if ('parse' in schema && typeof schema.parse === 'function') {
      return { ok: true, value: (await schema.parse(value)) as T };
    }
    let result: unknown = (schema as { validate(v: unknown): unknown }).validate(value);
    if (isThenable(result)) {
      result = await result;
      return { ok: true, value: (result === undefined || result === true ? value : result) as T };
    }
    if (result === false) return refusal(ajvReason((schema as { validate: unknown }).validate) ?? 'invalid message');
    if (result && typeof result === 'object' && 'error' in result) {
      const joi = result as { error?: unknown; value?: unknown };
      if (joi.error) return refusal(joi.error);
      return { ok: true, value: ('value' in joi ? joi.value : value) as T };
    }
    return { ok: true, value: value as T };
  } catch (err) {
    return refusal(err);
  }
}
