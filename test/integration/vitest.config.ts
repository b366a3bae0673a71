import { keelTestConfig } from '../../vitest.shared.js';

export default keelTestConfig({ testTimeout: 120_000 });
