import { keelTestConfig } from '../../vitest.shared.js';

export default keelTestConfig();
