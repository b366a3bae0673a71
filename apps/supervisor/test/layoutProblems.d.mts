/** Runs in the browser page: the layout problems found there, one line each. */
export declare function layoutProblemsInPage(): string[];
