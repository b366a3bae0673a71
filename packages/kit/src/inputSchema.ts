import type { Tool } from '@modelcontextprotocol/server';
import * as z from 'zod';

/** Any zod object, whatever its unknown-key mode (`z.object`, `z.strictObject`, `z.looseObject`). */
export type AnyObjectSchema = z.ZodObject<z.ZodRawShape, z.core.$ZodObjectConfig>;

/**
 * A tool's input: one object, or alternatives of objects for arguments that exclude each other —
 * `z.xor` (exactly one matches, published as `oneOf`), `z.union` or `z.discriminatedUnion` (`anyOf`).
 * Make the alternatives `z.strictObject`s, so an argument of one mode is refused in another.
 */
export type AnyInputSchema =
  AnyObjectSchema | z.ZodUnion<readonly AnyObjectSchema[]> | z.ZodXor<readonly AnyObjectSchema[]>;

/** The object alternatives of a union input; undefined for a plain object. */
export function inputAlternatives(schema: AnyInputSchema): readonly AnyObjectSchema[] | undefined {
  return schema instanceof z.ZodObject ? undefined : schema.options;
}

/** The argument names an input accepts: every alternative's. */
export function inputKeys(schema: AnyInputSchema): Set<string> {
  const objects = inputAlternatives(schema) ?? [schema as AnyObjectSchema];
  return new Set(objects.flatMap((object) => Object.keys(object.shape)));
}

/** The input with `extra` fields added to the object, or to every alternative of a union. */
export function extendInput(schema: AnyInputSchema, extra: z.ZodRawShape): AnyInputSchema {
  if (schema instanceof z.ZodObject) return schema.extend(extra);
  // `extend` drops the description; an alternative's description is what tells the model its mode.
  const options = schema.options.map((option) => {
    const extended = option.extend(extra);
    return option.description === undefined ? extended : extended.describe(option.description);
  });
  const rebuilt =
    schema instanceof z.ZodDiscriminatedUnion
      ? z.discriminatedUnion(schema._zod.def.discriminator, options as never)
      : schema instanceof z.ZodXor
        ? z.xor(options)
        : z.union(options);
  return schema.description === undefined ? rebuilt : rebuilt.describe(schema.description);
}

type JsonObject = Record<string, unknown>;

/**
 * The JSON Schema published in `tools/list`. MCP requires `type: "object"` at the top, so a union
 * is published as one object: every argument under `properties` (where clients that read only
 * `properties` find it, described once), the arguments all alternatives require under `required`,
 * and the alternatives as `oneOf` (`z.xor`) or `anyOf`, each naming the arguments it allows and
 * requires. An argument whose schema differs between alternatives (a discriminator) is constrained
 * inside each alternative and only described at the top.
 */
export function publishedInputSchema(schema: AnyInputSchema): Tool['inputSchema'] {
  const alternatives = inputAlternatives(schema);
  if (alternatives === undefined) return z.toJSONSchema(schema, { io: 'input' }) as Tool['inputSchema'];
  const converted = alternatives.map((option) => z.toJSONSchema(option, { io: 'input' }) as JsonObject);
  const propertiesOf = (json: JsonObject) => (json['properties'] ?? {}) as Record<string, unknown>;
  const requiredOf = (json: JsonObject) => (json['required'] ?? []) as string[];

  const variants = new Map<string, Set<string>>();
  for (const json of converted) {
    for (const [key, property] of Object.entries(propertiesOf(json))) {
      const seen = variants.get(key) ?? new Set<string>();
      seen.add(JSON.stringify(property));
      variants.set(key, seen);
    }
  }
  const shared = (key: string) => variants.get(key)?.size === 1;
  const properties: Record<string, unknown> = {};
  for (const json of converted) {
    for (const [key, property] of Object.entries(propertiesOf(json))) {
      if (key in properties) continue;
      // A differing argument is constrained in each alternative; the top names it with its description.
      const description = (property as JsonObject)['description'];
      properties[key] = shared(key) ? property : typeof description === 'string' ? { description } : {};
    }
  }
  const requiredEverywhere = requiredOf(converted[0] ?? {}).filter((key) =>
    converted.every((json) => requiredOf(json).includes(key)),
  );
  const branches = converted.map((json) => {
    const branch: JsonObject = {};
    if (typeof json['description'] === 'string') branch['description'] = json['description'];
    branch['properties'] = Object.fromEntries(
      Object.entries(propertiesOf(json)).map(([key, property]) => [key, shared(key) ? {} : property]),
    );
    const required = requiredOf(json).filter((key) => !requiredEverywhere.includes(key));
    if (required.length > 0) branch['required'] = required;
    if (json['additionalProperties'] === false) branch['additionalProperties'] = false;
    return branch;
  });
  const exclusive = schema instanceof z.ZodXor;
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    ...(schema.description === undefined ? {} : { description: schema.description }),
    properties,
    ...(requiredEverywhere.length > 0 ? { required: requiredEverywhere } : {}),
    [exclusive ? 'oneOf' : 'anyOf']: branches,
  } as Tool['inputSchema'];
}

/**
 * How a call's arguments meet the alternatives: `conflicting` names the arguments of different
 * alternatives that no one alternative takes together (e.g. `tailLines` and `startLine` of
 * `read_file`); otherwise `fit` is the first alternative that takes every mode argument sent, whose
 * own issues explain the failure. `modes` lists each alternative's own arguments.
 */
export function matchAlternatives(
  alternatives: readonly AnyObjectSchema[],
  rawArgs: unknown,
): { conflicting: string[]; fit: AnyObjectSchema | undefined; modes: string[][] } {
  const keys = alternatives.map((option) => new Set(Object.keys(option.shape)));
  const modes = keys.map((set) => [...set].filter((key) => !keys.every((other) => other.has(key))));
  const args = typeof rawArgs === 'object' && rawArgs !== null ? (rawArgs as JsonObject) : {};
  const modal = Object.keys(args).filter(
    (key) => args[key] !== undefined && modes.some((mode) => mode.includes(key)),
  );
  const fit = keys.findIndex((set) => modal.every((key) => set.has(key)));
  return { conflicting: fit === -1 ? modal : [], fit: alternatives[fit], modes };
}
