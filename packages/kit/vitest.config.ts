import { keelTestConfig } from '../../vitest.shared.js';

export default keelTestConfig({ testTimeout: 30_000, hookTimeout: 30_000 });
