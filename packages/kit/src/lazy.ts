/**
 * An object built on first use. Start-up pays for nothing a session never touches: a read-only
 * session never opens the state database, and a stdio server's cold start is on its client's
 * critical path.
 */
export function lazy<TObject extends object>(build: () => TObject): TObject {
  let built: TObject | undefined;
  const target = () => (built ??= build());
  return new Proxy({} as TObject, {
    get(_empty, property) {
      const value = Reflect.get(target(), property) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target()) : value;
    },
  });
}
