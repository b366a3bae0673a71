export { buildTrace, type TraceSpan } from '../observe/trace.js';
