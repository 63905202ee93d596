/**
 * Where a bearer session token lives between calls. The default keeps it in memory only; supply your
 * own (a file with mode 0600, the OS keychain, …) to survive restarts. Never log what it holds.
 */
export interface TokenStore {
  get(): string | null | Promise<string | null>;
  set(token: string | null): void | Promise<void>;
}

export function memoryTokenStore(initial: string | null = null): TokenStore {
  let token = initial;
  return {
    get: () => token,
    set: (next) => {
      token = next;
    },
  };
}
