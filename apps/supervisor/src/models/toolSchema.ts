/**
 * Model providers take a tool's input schema as one object: Anthropic refuses the whole request when
 * any tool's schema has `oneOf`, `anyOf` or `allOf` at its top, and OpenAI's function schemas must be
 * `type: object`. Keel's servers never publish that shape, but a third-party MCP server may: its
 * schema is flattened here into one object — every property of every alternative, required only
 * what all of them require — with the alternatives named in the description. Nothing is lost for
 * safety: the server still validates the call against its own schema and answers a wrong one with
 * an error the model reads.
 */
type Schema = Record<string, unknown>;

const combinators = ['oneOf', 'anyOf', 'allOf'] as const;

export function providerSafeSchema(schema: Schema): Schema {
  const present = combinators.filter((key) => Array.isArray(schema[key]));
  if (present.length === 0) return schema;
  const flat: Schema = { ...schema, type: 'object' };
  const properties: Record<string, unknown> = { ...(schema['properties'] as Record<string, unknown>) };
  let required = new Set<string>((schema['required'] as string[] | undefined) ?? []);
  const notes: string[] = [];
  for (const key of present) {
    const alternatives = (schema[key] as unknown[]).filter(
      (alternative): alternative is Schema => typeof alternative === 'object' && alternative !== null,
    );
    delete flat[key];
    for (const alternative of alternatives)
      for (const [name, property] of Object.entries((alternative['properties'] as Schema | undefined) ?? {}))
        properties[name] ??= property;
    const requiredOf = alternatives.map(
      (alternative) => new Set((alternative['required'] as string[]) ?? []),
    );
    // allOf: every alternative applies, so each one's required fields are; oneOf/anyOf: only those all share.
    const kept =
      key === 'allOf'
        ? requiredOf.flatMap((set) => [...set])
        : [...(requiredOf[0] ?? [])].filter((name) => requiredOf.every((set) => set.has(name)));
    required = new Set([...required, ...kept]);
    if (key !== 'allOf') {
      const shapes = requiredOf.map((set) =>
        set.size === 0 ? '(no required fields)' : [...set].join(' + '),
      );
      notes.push(
        `${key === 'oneOf' ? 'Exactly one' : 'At least one'} of these argument sets: ${shapes.join('; ')}.`,
      );
    }
  }
  flat['properties'] = properties;
  if (required.size > 0) flat['required'] = [...required];
  else delete flat['required'];
  if (notes.length > 0) {
    const description = typeof schema['description'] === 'string' ? `${schema['description']}\n` : '';
    flat['description'] = `${description}${notes.join(' ')}`;
  }
  return flat;
}
