/**
 * A value read from a user's file, quoted in an error message: JSON on one line (control
 * characters escaped) and cut to `max` characters, whatever the value is. BigInts, cycles and
 * nesting deep enough to overflow JSON.stringify's stack are described instead of throwing, so
 * the parser's own error is what the user sees.
 */
export function quote(value: unknown, max = 80): string {
  let s: string | undefined;
  try {
    s = JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    s = undefined; // a cycle, or too deep
  }
  s ??= Array.isArray(value) ? '[…]' : typeof value === 'object' && value !== null ? '{…}' : String(value);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** A name (a tensor key, a Python global) as it is when plain (letters, digits, `_ . - /`), otherwise quoted as above. */
export const quoteName = (name: string, max = 200): string => (name.length <= max && /^[\w./-]+$/.test(name) ? name : quote(name, max));

/** Another library's message (JSON.parse quotes the input, newlines and all) on one line, cut to `max` characters. */
export function oneLine(message: string, max = 300): string {
  const s = message.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
