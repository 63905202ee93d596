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
  const stack: { value: unknown; path: PropertyKey[] }[] = [{ value, path: [] }];
  const seen = new Set<object>();
  while (stack.length) {
    const { value: current, path } = stack.pop()!;
    if (typeof current === "string") {
      if (!isPgText(current)) return path;
      continue;
    }
    if (typeof current !== "object" || current === null || seen.has(current)) continue;
    seen.add(current);
    const entries = Array.isArray(current) ? current.map((item, index) => [index, item] as const) : Object.entries(current);
    // Reversed so the first field in document order is the one reported.
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, item] = entries[i]!;
      stack.push({ value: item, path: [...path, key] });
      // An object key is stored too (jsonb): checked just before its value.
      if (typeof key === "string") stack.push({ value: key, path: [...path, key] });
    }
  }
  return undefined;
}
