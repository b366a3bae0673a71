import type { ZodType } from 'zod';

/** Where the generated page lives, from the repository root. */
export declare const referencePath: string;
/** The contracts reference page as committed (see reference.mjs). */
export declare function renderContractsReference(registry?: Record<string, ZodType>): Promise<string>;
