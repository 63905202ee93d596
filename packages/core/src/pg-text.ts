import * as z from "zod";

/**
 * What PostgreSQL refuses in `text` and `jsonb`: U+0000 (in text it is "invalid byte sequence", in
 * jsonb "unsupported Unicode escape"), and UTF-16 surrogates without their pair (jsonb refuses the
 * `\udXXX` escape; text silently stores U+FFFD, so the value read back is not the value written).
 */
const PG_UNSAFE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export const PG_TEXT_MESSAGE = "must not contain U+0000 or an unpaired UTF-16 surrogate";

/** True when PostgreSQL stores `value` as it is: no U+0000, no unpaired surrogate. */
export function isPgText(value: string): boolean {
  return !PG_UNSAFE.test(value);
}

/**
 * A zod string that PostgreSQL can store: refuses U+0000 and unpaired surrogates. Use it for every
 * free-text field a provider writes to the database (names, labels); it is still a `ZodString`, so
 * `.min()`, `.max()`, `.regex()` chain after it.
 *
 * @example
 * const body = z.strictObject({ name: pgText().min(1).max(100) });
 */
export function pgText(message: string = PG_TEXT_MESSAGE) {
  return z.string().refine(isPgText, { message });
}

/**
 * The path to the first string (or object key) anywhere in `value` that PostgreSQL would refuse, or
 * `undefined` when there is none. Iterative, so a deeply nested body cannot overflow the stack.
 */
export function findPgUnsafeString(value: unknown): PropertyKey[] | undefined {
  // Each entry links to its parent instead of carrying its path: copying paths made a deeply nested
  // body ([[[[…]]]]) cost time quadratic in its depth. The path is built only for what is reported.
  interface Entry { value: unknown; key: PropertyKey | undefined; parent: Entry | undefined }
  const pathOf = (entry: Entry) => {
    const path: PropertyKey[] = [];
    for (let at: Entry | undefined = entry; at?.parent; at = at.parent) path.push(at.key!);
    return path.reverse();
  };
  const stack: Entry[] = [{ value, key: undefined, parent: undefined }];
  const seen = new Set<object>();
  while (stack.length) {
    const entry = stack.pop()!;
    const current = entry.value;
    if (typeof current === "string") {
      if (!isPgText(current)) return pathOf(entry);
      continue;
    }
    if (typeof current !== "object" || current === null || seen.has(current)) continue;
    seen.add(current);
    const keys: PropertyKey[] = Array.isArray(current) ? current.map((_item, index) => index) : Object.keys(current);
    // Reversed so the first field in document order is the one reported.
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      stack.push({ value: (current as Record<PropertyKey, unknown>)[key], key, parent: entry });
      // An object key is stored too (jsonb): checked just before its value.
      if (typeof key === "string") stack.push({ value: key, key, parent: entry });
    }
  }
  return undefined;
}
