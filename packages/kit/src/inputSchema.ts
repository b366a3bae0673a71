import type { Tool } from '@modelcontextprotocol/server';
import * as z from 'zod';

/** Any zod object, whatever its unknown-key mode (`z.object`, `z.strictObject`, `z.looseObject`). */
export type AnyObjectSchema = z.ZodObject<z.ZodRawShape, z.core.$ZodObjectConfig>;

/**
 * A tool's input: one object, or alternatives of objects for arguments that exclude each other —
 * `z.xor` (exactly one matches), `z.union` or `z.discriminatedUnion` (the first that matches).
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
 * The JSON Schema published in `tools/list`. MCP requires `type: "object"` at the top, and the
 * Anthropic API (behind Claude Code and Claude Desktop) rejects a tool list whose input schema has
 * `oneOf`/`anyOf`/`allOf` at the top — the whole request, not only that tool. So a union is
 * published as one object: every argument under `properties` (an argument whose schema differs
 * between alternatives, a discriminator, carries them as a nested `anyOf`), the arguments all
 * alternatives require under `required`, the pairs no alternative takes together as
 * `not: { anyOf: [{ required: [a, b] }, ...] }`, an argument that only comes with another as
 * `dependentRequired`, and the alternatives' descriptions in the schema's `description`.
 */
export function publishedInputSchema(schema: AnyInputSchema): Tool['inputSchema'] {
  return withoutNoise(combinedInputSchema(schema)) as Tool['inputSchema'];
}

/**
 * What a published schema drops because every request to a model carries it and it tells the model
 * nothing: `$schema` (MCP's default dialect is 2020-12 already) and the ±2^53-1 bounds zod puts on
 * every integer. The server validates with the zod schema, so nothing it accepts changes.
 */
function withoutNoise(json: unknown, top = true): unknown {
  if (Array.isArray(json)) return json.map((item) => withoutNoise(item, false));
  if (typeof json !== 'object' || json === null) return json;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(json)) {
    if (top && key === '$schema') continue;
    if (key === 'maximum' && value === Number.MAX_SAFE_INTEGER) continue;
    if (key === 'minimum' && value === Number.MIN_SAFE_INTEGER) continue;
    out[key] = withoutNoise(value, false);
  }
  return out;
}

function combinedInputSchema(schema: AnyInputSchema): JsonObject {
  const alternatives = inputAlternatives(schema);
  if (alternatives === undefined) return z.toJSONSchema(schema, { io: 'input' }) as JsonObject;
  const converted = alternatives.map((option) => z.toJSONSchema(option, { io: 'input' }) as JsonObject);
  const propertiesOf = (json: JsonObject) => (json['properties'] ?? {}) as Record<string, unknown>;
  const requiredOf = (json: JsonObject) => (json['required'] ?? []) as string[];

  const variants = new Map<string, Map<string, unknown>>();
  for (const json of converted) {
    for (const [key, property] of Object.entries(propertiesOf(json))) {
      const seen = variants.get(key) ?? new Map<string, unknown>();
      seen.set(JSON.stringify(property), property);
      variants.set(key, seen);
    }
  }
  const properties: Record<string, unknown> = {};
  for (const [key, seen] of variants) {
    const distinct = [...seen.values()];
    properties[key] = distinct.length === 1 ? distinct[0] : { anyOf: distinct };
  }
  const keys = converted.map((json) => new Set(Object.keys(propertiesOf(json))));
  const required = requiredOf(converted[0] ?? {}).filter((key) =>
    converted.every((json) => requiredOf(json).includes(key)),
  );
  const names = [...variants.keys()];
  const exclusive: string[][] = [];
  names.forEach((first, index) => {
    for (const second of names.slice(index + 1)) {
      if (!keys.some((set) => set.has(first) && set.has(second))) exclusive.push([first, second]);
    }
  });
  // `to` of git_diff only exists in the alternative that also requires `from`.
  const dependentRequired: Record<string, string[]> = {};
  for (const key of names) {
    const holding = converted.filter((json) => key in propertiesOf(json));
    const needs = requiredOf(holding[0] ?? {}).filter(
      (other) =>
        other !== key &&
        !required.includes(other) &&
        holding.every((json) => requiredOf(json).includes(other)),
    );
    if (needs.length > 0) dependentRequired[key] = needs;
  }
  const modes = converted
    .map((json) => json['description'])
    .filter((description): description is string => typeof description === 'string');
  const description = [
    ...(schema.description === undefined ? [] : [schema.description]),
    ...(modes.length === 0 ? [] : [`One of: ${modes.join(' | ')}`]),
  ].join(' ');
  return {
    type: 'object',
    ...(description === '' ? {} : { description }),
    properties,
    ...(required.length > 0 ? { required } : {}),
    ...(converted.every((json) => json['additionalProperties'] === false)
      ? { additionalProperties: false }
      : {}),
    ...(exclusive.length > 0 ? { not: { anyOf: exclusive.map((pair) => ({ required: pair })) } } : {}),
    ...(Object.keys(dependentRequired).length > 0 ? { dependentRequired } : {}),
  };
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
