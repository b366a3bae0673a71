import { keelTestConfig } from '../../vitest.shared.js';

const shared = keelTestConfig();

// The bench is plain JavaScript: its tests are too.
export default { test: { ...shared.test, include: ['test/**/*.test.mjs'] } };
