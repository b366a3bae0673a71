import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateApprovalKeyPair } from '@keel/kit/approval';
import { starterConfig } from './starter.js';

const mathJs = `/** Sum of two numbers. */
export function add(a, b) {
  return a - b;
}

/** Arithmetic mean of a list of numbers. */
export function average(values) {
  let total = 0;
  for (const value of values) total = add(total, value);
  return total / (values.length - 1);
}
`;

const mathTest = `import { test } from 'node:test';
import assert from 'node:assert/strict';
import { add, average } from '../app/math.js';

test('add sums two numbers', () => {
  assert.equal(add(2, 3), 5);
});

test('average of a list', () => {
  assert.equal(average([2, 4, 6]), 4);
});

test('average of an empty list is 0', () => {
  assert.equal(average([]), 0);
});
`;

const indexHtml = `<!doctype html>
<title>keel demo app</title>
<h1>keel demo app</h1>
<script type="module">
  import { average } from './math.js';
  document.body.append(\`average([2, 4, 6]) = \${average([2, 4, 6])}\`);
</script>
`;

const demoTask = (
  deploy: boolean,
) => `# The demo task. The playbook model plays the script below through the same interface, limits
# and records as a real model would; \`when\` turns branch on earlier tool results.
type: bugfix
title: Fix the math helpers
description: >-
  The tests in test/math.test.js fail: add() subtracts and average() divides by the wrong count.
  Fix app/math.js so that every test passes, then deploy to staging and production.
mode: orchestrated
tests: {}
deploy: ${deploy ? '{ environments: [staging, production] }' : 'null'}
playbook:
  planning:
    - - call: read_file
        args: { path: app/math.js }
      - call: read_file
        args: { path: test/math.test.js }
      - submit:
          version: plan.v1
          summary: "Make add() sum its arguments and average() divide by the number of values."
          steps:
            - { id: s1, description: "add() returns a + b", files: [app/math.js] }
            - { id: s2, description: "average() divides by values.length", files: [app/math.js] }
          acceptance: ["every test in test/math.test.js passes"]
  coding:
    # Round 1 fixes add() only; the review sends it back.
    - - call: edit_file
        args: { path: app/math.js, edits: [{ oldText: "return a - b;", newText: "return a + b;" }] }
      - call: git_add
        args: { paths: [app/math.js] }
      - call: git_commit
        args: { message: "Fix add(): it subtracted its arguments" }
      - submit:
          version: change.v1
          summary: "add() returns the sum"
          files: [{ path: app/math.js, status: modified, linesAdded: 1, linesRemoved: 1 }]
          commit: { sha: "{{git_commit.sha}}", message: "Fix add(): it subtracted its arguments" }
    # Round 2 answers the review; the tests then find the empty list.
    - - call: edit_file
        args: { path: app/math.js, edits: [{ oldText: "values.length - 1", newText: "values.length" }] }
      - call: git_add
        args: { paths: [app/math.js] }
      - call: git_commit
        args: { message: "Fix average(): divide by the number of values" }
      - submit:
          version: change.v1
          summary: "average() divides by values.length"
          files: [{ path: app/math.js, status: modified, linesAdded: 1, linesRemoved: 1 }]
          commit: { sha: "{{git_commit.sha}}", message: "Fix average(): divide by the number of values" }
          addressed: ["average() divided by length - 1: now divides by length"]
    # Round 3 answers the failing test.
    - - call: edit_file
        args:
          path: app/math.js
          edits: [{ oldText: "  let total = 0;", newText: "  if (values.length === 0) return 0;\\n  let total = 0;" }]
      - call: git_add
        args: { paths: [app/math.js] }
      - call: git_commit
        args: { message: "average() of an empty list is 0" }
      - submit:
          version: change.v1
          summary: "average([]) returns 0 instead of NaN"
          files: [{ path: app/math.js, status: modified, linesAdded: 1, linesRemoved: 0 }]
          commit: { sha: "{{git_commit.sha}}", message: "average() of an empty list is 0" }
          addressed: ["test 'average of an empty list is 0' failed with NaN"]
  review:
    - &review
      - call: read_file
        args: { path: app/math.js }
      - when: { tool: read_file, field: content, contains: "length - 1" }
        do:
          submit:
            version: review.v1
            verdict: request_changes
            summary: "add() is fixed, but average() still divides by the wrong count."
            comments:
              - { path: app/math.js, severity: blocker, body: "average() divides by values.length - 1; divide by values.length." }
        otherwise:
          submit:
            version: review.v1
            verdict: approve
            summary: "Both helpers match the plan."
            comments: []
    - *review
    - *review
${deploy ? deployScript : ''}`;

const deployTurns = (environment: string) => `    - - call: plan_deploy
        args: { environment: ${environment} }
      - call: apply_deploy
        args: { planId: "{{plan_deploy.planId}}" }
      - when: { tool: apply_deploy, field: status, equals: live }
        do:
          submit:
            version: deploy.v1
            environment: ${environment}
            status: live
            releaseId: "{{apply_deploy.releaseId}}"
            planId: "{{plan_deploy.planId}}"
            planHash: "{{plan_deploy.planHash}}"
        otherwise:
          submit:
            version: deploy.v1
            environment: ${environment}
            status: rolled_back
            reason: "the health check failed after the switch"
`;

// Staging first; production needs a human's approval, which the supervisor turns into a signed token.
const deployScript = `  deploy:
${deployTurns('staging')}${deployTurns('production')}`;

const deployConfig = (
  stagingHealth: string,
) => `# Where the deploy server puts the app: releases under ../deploys/<environment>, \`current\` the live one.
environments:
  staging:
    build: app
    target: { type: directory, path: ../deploys/staging }
    policy:
      keep: 3
      # After the switch: the live release's math must be right, or staging goes back to what it was.
      health: ${stagingHealth}
  production:
    build: app
    target: { type: directory, path: ../deploys/production }
    policy:
      keep: 5
      # Only with an approval token signed by a key the deploy server trusts (--approval-key).
      requiresApproval: true
      health: { command: [node, scripts/smoke.mjs, ../deploys/production/current] }
`;

const smokeScript = `// The health check of both environments: the live release's math must be right (exit 0), or it is rolled back.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.argv[2];
const math = await import(pathToFileURL(path.resolve(dir, 'math.js')).href);
const ok = math.add(2, 3) === 5 && math.average([2, 4, 6]) === 4 && math.average([]) === 0;
console.log(ok ? 'smoke ok' : 'smoke failed: the math is wrong');
process.exit(ok ? 0 : 1);
`;

export interface DemoProject {
  dir: string;
  project: string;
  config: string;
  task: string;
}

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'init.defaultBranch=main', ...args], {
    cwd,
    stdio: 'ignore',
    env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
  });

export interface DemoOptions {
  /** Deploy targets, a deploy config, approval keys and a deploy script in the task (default true). */
  deploy?: boolean;
  /**
   * Staging's health check as an HTTP URL instead of the project's own check script. The script
   * is the default: it is there as long as the project is, so a replay or a second run finds it.
   */
  stagingHealthUrl?: string;
}

/**
 * Writes the demo: a small app with two bugs and a failing test in a git repository, a
 * supervisor config with the four servers, the deploy config of its two environments, and the
 * task file the playbook model plays.
 */
export function createDemoProject(dir: string, options: DemoOptions = {}): DemoProject {
  const deploy = options.deploy ?? true;
  const project = path.join(dir, 'project');
  mkdirSync(path.join(project, 'app'), { recursive: true });
  mkdirSync(path.join(project, 'test'), { recursive: true });
  writeFileSync(
    path.join(project, 'package.json'),
    `${JSON.stringify({ name: 'keel-demo-app', private: true, type: 'module', scripts: { test: 'node --test' } }, null, 2)}\n`,
  );
  writeFileSync(path.join(project, 'app', 'math.js'), mathJs);
  writeFileSync(path.join(project, 'app', 'index.html'), indexHtml);
  writeFileSync(path.join(project, 'test', 'math.test.js'), mathTest);
  if (deploy) {
    writeFileSync(
      path.join(project, 'keel.deploy.yaml'),
      deployConfig(
        options.stagingHealthUrl === undefined
          ? '{ command: [node, scripts/smoke.mjs, ../deploys/staging/current] }'
          : `{ http: ${options.stagingHealthUrl}, timeoutMs: 5000 }`,
      ),
    );
    mkdirSync(path.join(project, 'scripts'));
    writeFileSync(path.join(project, 'scripts', 'smoke.mjs'), smokeScript);
    // The supervisor signs deploy approvals with the private key; the deploy server trusts the public one.
    const { privateKeyPem, publicKeyPem } = generateApprovalKeyPair();
    mkdirSync(path.join(dir, 'keys'), { mode: 0o700 });
    writeFileSync(path.join(dir, 'keys', 'approval.key'), privateKeyPem, { mode: 0o600 });
    writeFileSync(path.join(dir, 'keys', 'approval.pub'), publicKeyPem);
  }
  git(project, 'init', '-q');
  git(project, 'config', 'user.name', 'Keel Demo');
  git(project, 'config', 'user.email', 'demo@keel.invalid');
  git(project, 'config', 'commit.gpgsign', 'false');
  git(project, 'add', '-A');
  git(project, 'commit', '-q', '-m', 'A small app with two bugs and a failing test');
  const config = path.join(dir, 'keel.config.yaml');
  writeFileSync(
    config,
    starterConfig({
      workspace: 'project',
      // Beside the project, not in it: the demo's directory is its own.
      stateDir: '.keel',
      ...(!deploy
        ? {}
        : {
            deployConfig: 'keel.deploy.yaml',
            approvalKeys: { signingKey: 'keys/approval.key', publicKey: '../keys/approval.pub' },
          }),
    }),
  );
  const task = path.join(dir, 'demo.task.yaml');
  writeFileSync(task, demoTask(deploy));
  return { dir, project, config, task };
}
