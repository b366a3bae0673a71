/** Runs in the browser page: the layout problems found there, one line each. */
export declare function layoutProblemsInPage(): string[];
/** Runs in the browser page: true once every chart was drawn for the current width. */
export declare function chartsDrawnForViewport(): boolean;
/** Runs in the browser page: true once every chart bar has a width on screen. */
export declare function chartBarsLaidOut(): boolean;
