export {
  runServerCli,
  type ServerCliOptions,
  type CommonOptions,
  type BuildContext,
} from './runServerCli.js';
