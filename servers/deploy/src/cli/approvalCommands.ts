import { readFileSync, writeFileSync } from 'node:fs';
import type { Command, SubcommandContext } from '@keel/kit/cli';
import { generateApprovalKeyPair, newNonce, parsePrivateKey, signApproval } from '@keel/kit/approval';

const maxTtlMs = 24 * 3600_000;

/** Parses `90s`, `15m`, `2h` (at most 24 h). */
export function parseTtl(text: string): number {
  const match = /^(\d+)(s|m|h)$/.exec(text);
  if (match === null) throw new Error(`--ttl '${text}' must look like 90s, 15m or 2h`);
  const ms = Number(match[1]) * { s: 1000, m: 60_000, h: 3600_000 }[match[2] as 's' | 'm' | 'h'];
  if (ms <= 0 || ms > maxTtlMs) throw new Error(`--ttl '${text}' must be more than 0 and at most 24h`);
  return ms;
}

/**
 * `keel-deploy keygen` writes an Ed25519 key pair; `keel-deploy approve` signs an approval of one plan
 * with the private key and prints the token. Neither starts a server.
 */
export function registerApprovalCommands(program: Command, context: SubcommandContext): void {
  const failWith = (message: string) => {
    process.stderr.write(`keel-deploy: ${message}\n`);
    context.setExitCode(2);
  };
  program
    .command('keygen')
    .description(
      'write a new Ed25519 key pair for approvals: the private key signs (keep it with the approver), the public key goes to servers',
    )
    .option('--private-key <file>', 'where to write the private key (mode 0600)', 'keel-approval.key')
    .option('--public-key <file>', 'where to write the public key', 'keel-approval.pub')
    .action((options: { privateKey: string; publicKey: string }) => {
      const pair = generateApprovalKeyPair();
      try {
        // 'wx': never overwrite a key someone may still depend on.
        writeFileSync(options.privateKey, pair.privateKeyPem, { flag: 'wx', mode: 0o600 });
        writeFileSync(options.publicKey, pair.publicKeyPem, { flag: 'wx', mode: 0o644 });
      } catch (error) {
        failWith(`${(error as Error).message} (keygen never overwrites a key file)`);
        return;
      }
      process.stdout.write(
        `${JSON.stringify({ privateKey: options.privateKey, publicKey: options.publicKey })}\n`,
      );
    });
  program
    .command('approve')
    .description(
      'sign an approval of one plan and print the token, for apply_deploy\'s _meta["keel/approval"]',
    )
    .argument('<planId>', 'the plan to approve (from plan_deploy)')
    .requiredOption('--signing-key <file>', 'the private key from keel-deploy keygen')
    .requiredOption('--environment <name>', 'the environment the plan deploys to')
    .requiredOption('--plan-hash <hash>', 'the planHash plan_deploy returned (what is approved)')
    .requiredOption('--approver <name>', 'who approves; recorded in the audit log')
    .option('--ttl <duration>', 'how long the token stays valid (90s, 15m, 2h; at most 24h)', '15m')
    .action(
      (
        planId: string,
        options: { signingKey: string; environment: string; planHash: string; approver: string; ttl: string },
      ) => {
        try {
          if (!/^[0-9a-f]{64}$/.test(options.planHash))
            throw new Error('--plan-hash must be the 64 hex digits plan_deploy returned');
          const key = parsePrivateKey(readFileSync(options.signingKey, 'utf8'), options.signingKey);
          const issuedAt = Date.now();
          const token = signApproval(
            {
              tool: 'apply_deploy',
              environment: options.environment,
              planId,
              planHash: options.planHash,
              approver: options.approver,
              issuedAt,
              expiresAt: issuedAt + parseTtl(options.ttl),
              nonce: newNonce(),
            },
            key,
          );
          process.stdout.write(`${token}\n`);
        } catch (error) {
          failWith((error as Error).message);
        }
      },
    );
}
