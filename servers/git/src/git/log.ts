import * as z from 'zod';

/** The `--format` that `parseLog` reads: NUL-separated fields, one commit per record. */
export const logFormat = '--format=%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%s%x00%b%x00';
const fieldsPerCommit = 10;
const maxBody = 4000;

export const personSchema = z.object({ name: z.string(), email: z.string(), date: z.string() });
export const commitSchema = z.object({
  sha: z.string(),
  parents: z.array(z.string()),
  author: personSchema,
  committer: personSchema,
  subject: z.string(),
  body: z.string().describe(`The message after the subject, cut at ${maxBody} characters.`),
  bodyTruncated: z.boolean().optional(),
});
export type Commit = z.output<typeof commitSchema>;

export function parseLog(output: string): Commit[] {
  const tokens = output.split('\0');
  const commits: Commit[] = [];
  for (let i = 0; i + fieldsPerCommit <= tokens.length; i += fieldsPerCommit) {
    const [sha, parents, an, ae, ad, cn, ce, cd, subject, body] = tokens.slice(
      i,
      i + fieldsPerCommit,
    ) as string[];
    const cleanSha = sha!.replace(/^\n+/, '');
    if (cleanSha.length === 0) break;
    const fullBody = body!.replace(/\n+$/, '');
    commits.push({
      sha: cleanSha,
      parents: parents!.split(' ').filter(Boolean),
      author: { name: an!, email: ae!, date: ad! },
      committer: { name: cn!, email: ce!, date: cd! },
      subject: subject!,
      body: fullBody.length > maxBody ? fullBody.slice(0, maxBody) : fullBody,
      ...(fullBody.length > maxBody ? { bodyTruncated: true } : {}),
    });
  }
  return commits;
}
