export {
  runServerCli,
  type ServerCliOptions,
  type CommonOptions,
  type BuildContext,
  type BuiltServer,
  type SubcommandContext,
} from './runServerCli.js';
export { collect, collectChoice, nonNegativeInt } from './flags.js';
export { packageVersion } from '../packageVersion.js';
// Server bins declare their own flags through `configure`; these let them validate without
// depending on commander themselves.
export { InvalidArgumentError, Option } from 'commander';
export type { Command } from 'commander';
