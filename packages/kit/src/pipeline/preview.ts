import type { CallContext } from '../callContext.js';
import type { AnyTool } from '../defineTool.js';
import { fail, ok, toolError, type Outcome, type ToolError } from '../errors.js';
import { REFUSED_PREVIEW_BINDING } from '../previewKeys.js';
import {
  EXPECT_PREVIEW_META_KEY,
  finishPreview,
  PREVIEW_META_KEY,
  previewResultSchema,
  type EffectPreview,
  type PlannedEffect,
  type ToolPlan,
} from '../preview.js';
import type { Logger } from '../logger.js';
import { executeHandler } from './execute.js';
import { errorResult, measured, type Rendered } from './render.js';

/** What the request's `_meta` asks of a call: only its preview, or the real call bound to one. */
export interface PreviewRequest {
  preview: boolean;
  /** The binding the real call must still have (from `_meta["keel/expect-preview"]`). */
  expected: string | undefined;
}

/**
 * Reads the preview keys of `_meta`. A malformed value is refused rather than ignored: a caller who
 * meant to preview must never get the real effect, and one who bound the call must get the check.
 */
export function previewRequest(
  tool: AnyTool,
  meta: Readonly<Record<string, unknown>> | undefined,
): Outcome<PreviewRequest> {
  const asked = meta?.[PREVIEW_META_KEY];
  const expected = meta?.[EXPECT_PREVIEW_META_KEY];
  if (asked !== undefined && typeof asked !== 'boolean') {
    return fail('INVALID_ARGUMENT', `_meta["${PREVIEW_META_KEY}"] must be true or false`, {
      hint: `Send _meta["${PREVIEW_META_KEY}"]: true to get only the effect the call would have.`,
    });
  }
  if (
    expected !== undefined &&
    expected !== REFUSED_PREVIEW_BINDING &&
    (typeof expected !== 'string' || !/^[0-9a-f]{64}$/.test(expected))
  ) {
    return fail('INVALID_ARGUMENT', `_meta["${EXPECT_PREVIEW_META_KEY}"] must be a preview's binding`, {
      hint: `Send the 64-hex-digit \`binding\` a preview of this call returned, or "${REFUSED_PREVIEW_BINDING}" when its preview was an error.`,
    });
  }
  const preview = asked === true;
  if (preview && expected !== undefined) {
    return fail(
      'INVALID_ARGUMENT',
      `a preview request cannot also carry _meta["${EXPECT_PREVIEW_META_KEY}"]`,
      {
        hint: 'Preview first, then send the real call with the binding the preview returned.',
      },
    );
  }
  if ((preview || expected !== undefined) && tool.spec.plan === undefined) {
    return fail('INVALID_ARGUMENT', `${tool.spec.name} cannot preview its effect`, {
      hint:
        tool.spec.effect === 'read'
          ? `${tool.spec.name} only reads (readOnlyHint): it changes nothing, so there is nothing to preview.`
          : `Only tools marked _meta["${PREVIEW_META_KEY}"]: true in tools/list can preview; call this one without the preview keys, and count its effect as unknown.`,
    });
  }
  return ok({ preview, expected: typeof expected === 'string' ? expected : undefined });
}

export interface PlanOptions {
  maxFiles: number;
}

/** Plans the call and computes the preview of its effect; nothing is applied. */
export async function previewCall(
  tool: AnyTool,
  input: Record<string, unknown>,
  ctx: CallContext,
  options: PlanOptions,
): Promise<Outcome<EffectPreview>> {
  const planned = await tool.spec.plan!(input, ctx);
  if (!planned.ok) return planned;
  return await previewOf(planned.value, ctx, options);
}

async function previewOf(
  plan: ToolPlan<unknown>,
  ctx: CallContext,
  options: PlanOptions,
): Promise<Outcome<EffectPreview>> {
  return await finishPreview(await plan.effect(), {
    jail: ctx.jail,
    signal: ctx.signal,
    maxFiles: options.maxFiles,
  });
}

/**
 * Plans the call and applies the plan. A call bound to a preview recomputes the preview from the
 * same plan first (after the idempotency claim, so no duplicate runs beside it) and is refused,
 * having changed nothing, if its binding moved; `onRefused` lets the pipeline free the key.
 */
export async function applyPlanned(
  tool: AnyTool,
  input: Record<string, unknown>,
  ctx: CallContext,
  expected: string | undefined,
  options: PlanOptions & { onRefused: () => void },
): Promise<Outcome<unknown>> {
  const planned = await tool.spec.plan!(input, ctx);
  if (!planned.ok) return planned;
  if (expected === REFUSED_PREVIEW_BINDING) {
    // Its preview was an error; the plan holds now: the state moved, and this effect was never sized.
    options.onRefused();
    return {
      ok: false,
      error: toolError(
        'PRECONDITION_FAILED',
        `${tool.spec.name} would now change what its preview said it could not: the state it acts on changed since`,
        {
          hint: 'Preview again (_meta["keel/preview"]: true), check the effect, and send the call with its binding; nothing was changed.',
        },
      ),
    };
  }
  // Declared to change no file: held to it on every real call, bound to a preview or not (a client
  // that trusted the declaration sized nothing), before anything is applied.
  if (tool.spec.changesNoFiles === true) {
    const broken = brokenDeclaration(await planned.value.effect());
    if (broken !== undefined) {
      options.onRefused();
      return {
        ok: false,
        error: toolError(
          'INTERNAL',
          `${tool.spec.name} declares that it changes no file, yet its plan ${broken}`,
          {
            hint: "The server's tool is at fault, not the call: report it; nothing was changed.",
          },
        ),
      };
    }
  }
  if (expected !== undefined) {
    const preview = await previewOf(planned.value, ctx, options);
    if (!preview.ok) return preview;
    if (preview.value.binding !== expected) {
      options.onRefused();
      return { ok: false, error: bindingMoved(tool.spec.name, expected, preview.value) };
    }
  }
  return await planned.value.apply();
}

/** How an effect breaks a `changesNoFiles` declaration, if it does: the declaration is the whole effect. */
function brokenDeclaration(effect: PlannedEffect): string | undefined {
  if (effect.files.length > 0) return `would change ${effect.files.length} file(s)`;
  if (effect.complete === false)
    return `cannot list its whole effect (${effect.reason ?? 'no reason given'})`;
  if (effect.irreversible !== undefined) return `is irreversible (${effect.irreversible})`;
  return undefined;
}

function bindingMoved(tool: string, expected: string, now: EffectPreview): ToolError {
  return toolError(
    'PRECONDITION_FAILED',
    `${tool} would now act on a different state than the preview this call is bound to: a file it changes was changed, created or removed since`,
    {
      hint: 'Preview again (_meta["keel/preview"]: true), check the new effect, and send the call with the new binding; nothing was changed.',
      details: {
        expected,
        binding: now.binding,
        files: now.files.slice(0, 50).map((file) => file.path),
      },
    },
  );
}

/** A preview as `tools/call` answers it: `{ preview }` and a short text, held to the result cap. */
export function renderPreview(
  tool: AnyTool,
  outcome: Outcome<EffectPreview>,
  display: (real: string) => string,
  maxResultBytes: number,
): Rendered {
  if (!outcome.ok) return measured(errorResult(outcome.error));
  const rendered = measured({
    content: [{ type: 'text', text: previewText(tool.spec.name, outcome.value, display) }],
    structuredContent: previewResultSchema.parse({ preview: outcome.value }),
  });
  if (rendered.bytes <= maxResultBytes) return rendered;
  return measured(
    errorResult(
      toolError(
        'RESOURCE_LIMIT',
        `the preview of ${tool.spec.name} is ${rendered.bytes} bytes, over the server's hard cap of ${maxResultBytes}`,
        { hint: 'Preview a smaller change (fewer files), or count its effect as unknown.' },
      ),
    ),
  );
}

const shownFiles = 20;

function previewText(tool: string, preview: EffectPreview, display: (real: string) => string): string {
  const lines = [
    preview.files.length === 0
      ? `${tool} would change no file${preview.complete ? '' : ' that the preview can list'}`
      : `${tool} would change ${preview.files.length} file(s):`,
  ];
  for (const file of preview.files.slice(0, shownFiles)) {
    const counts = file.binary === true ? 'binary' : `+${file.linesAdded} -${file.linesRemoved}`;
    const from = file.from === undefined ? '' : ` from ${display(file.from)}`;
    lines.push(`  ${file.change} ${display(file.path)}${from} (${counts})`);
  }
  if (preview.files.length > shownFiles) lines.push(`  … and ${preview.files.length - shownFiles} more`);
  if (!preview.complete)
    lines.push(`incomplete: ${preview.reason ?? 'the tool cannot list its whole effect'}`);
  if (preview.irreversible !== undefined) lines.push(`irreversible: ${preview.irreversible}`);
  lines.push(`binding ${preview.binding}`);
  return lines.join('\n');
}

/**
 * A preview request's run: the plan's effect (through the handler's span and error handling), bounded
 * and rendered as the call's result. Nothing is applied.
 */
export function previewRun(
  tool: AnyTool,
  input: Record<string, unknown>,
  ctx: CallContext,
  trace: Parameters<typeof executeHandler>[3],
  logger: Logger,
  limits: { previewMaxFiles: number; maxResultBytes: number },
): Promise<{ outcome: Outcome<unknown>; rendered: Rendered }> {
  const plan = () => previewCall(tool, input, ctx, { maxFiles: limits.previewMaxFiles });
  return executeHandler(tool, input, ctx, trace, logger, plan).then((outcome) => ({
    outcome,
    rendered: renderPreview(
      tool,
      outcome as Outcome<EffectPreview>,
      (real) => ctx.jail.display(real),
      limits.maxResultBytes,
    ),
  }));
}
