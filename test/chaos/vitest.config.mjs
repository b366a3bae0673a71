import { keelTestConfig } from '../../vitest.shared.js';

const shared = keelTestConfig();

// The campaign is plain JavaScript (run by node, no build): its test is too.
export default { test: { ...shared.test, include: ['test/**/*.test.mjs'] } };
