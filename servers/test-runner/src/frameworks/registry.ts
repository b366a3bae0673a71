import { cargoAdapter } from './cargo.js';
import { commandAdapter } from './command.js';
import { goAdapter } from './go.js';
import { jestAdapter } from './jest.js';
import { mochaAdapter } from './mocha.js';
import { nodeTapAdapter } from './nodeTap.js';
import { nodeTestAdapter } from './nodeTest.js';
import { pytestAdapter } from './pytest.js';
import { tapeAdapter } from './tape.js';
import type { FrameworkAdapter, FrameworkName } from './types.js';
import { vitestAdapter } from './vitest.js';

/** The server's own command templates, one adapter per framework. */
export const adapters: Readonly<Record<FrameworkName, FrameworkAdapter>> = {
  vitest: vitestAdapter,
  jest: jestAdapter,
  'node-test': nodeTestAdapter,
  mocha: mochaAdapter,
  tape: tapeAdapter,
  'node-tap': nodeTapAdapter,
  pytest: pytestAdapter,
  go: goAdapter,
  cargo: cargoAdapter,
  command: commandAdapter,
};
