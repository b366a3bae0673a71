import { keelTestConfig } from '../../vitest.shared.js';

export default keelTestConfig({ testTimeout: 180_000 });
