import type { HoistCommand } from '../command.js';
import { loadDockerfile } from './parse.js';
import { parseStages, type Stage, type Stages } from '../../dockerfile/instructions.js';
import { HoistError } from '../../util/errors.js';

/** One stage of the outline: what it is built from and which stages it needs. */
export interface OutlineStage {
  index: number;
  name?: string;
  base: string;
  platform?: string;
  line: number;
  /** Stages this one reads from (FROM, COPY --from, RUN --mount from=), by index. */
  needs: number[];
  /** ARGs declared inside the stage, with defaults as written. */
  args: { name: string; default?: string }[];
}

/** Stages, global ARGs and the dependency graph of a Dockerfile, without building anything. */
export interface Outline {
  args: { name: string; default?: string; line: number }[];
  stages: OutlineStage[];
  target: number;
  /** Stages built for the target, in dependency order. */
  build: number[];
}

function stageRef(ref: string, stages: Stage[], before: number): number | undefined {
  const lower = ref.toLowerCase();
  for (let i = before - 1; i >= 0; i--) if (stages[i].name === lower) return i;
  if (/^\d+$/.test(ref) && Number(ref) < before) return Number(ref);
  return undefined;
}

/** Computes the outline of parsed stages for `target` (default: the last stage). */
export function outline(parsed: Stages, target?: string): Outline {
  const { stages, metaArgs } = parsed;
  const out: OutlineStage[] = stages.map((s, i) => {
    const needs = new Set<number>();
    const add = (r: string | undefined) => {
      if (r === undefined) return;
      const j = stageRef(r, stages, i);
      if (j !== undefined) needs.add(j);
    };
    add(s.base);
    const args: OutlineStage['args'] = [];
    for (const c of s.commands) {
      if (c.kind === 'copy') add(c.from);
      if (c.kind === 'run') for (const m of c.mounts) add('from' in m ? m.from : undefined);
      if (c.kind === 'arg') for (const a of c.args) args.push({ name: a.key, default: a.value });
    }
    return { index: i, name: s.name, base: s.base, platform: s.platform, line: s.location.startLine, needs: [...needs].sort((a, b) => a - b), args };
  });
  let t = out.length - 1;
  if (target !== undefined) {
    const j = stages.findIndex((s) => s.name === target.toLowerCase());
    if (j < 0) {
      const names = stages.map((s) => s.name).filter(Boolean).join(', ');
      throw new HoistError('E_TARGET', `target stage "${target}" could not be found`, { hint: names ? `stages: ${names}` : 'no stage has a name; add "AS name" to a FROM' });
    }
    t = j;
  }
  const build: number[] = [];
  const visit = (i: number) => {
    if (build.includes(i)) return;
    for (const n of out[i].needs) visit(n);
    build.push(i);
  };
  visit(t);
  return {
    args: metaArgs.flatMap((a) => a.args.map((x) => ({ name: x.key, default: x.value, line: a.location.startLine }))),
    stages: out,
    target: t,
    build,
  };
}

function label(s: OutlineStage): string {
  return s.name ? `${s.index} (${s.name})` : String(s.index);
}

export const outlineCommand: HoistCommand = {
  command: 'outline',
  describe: 'Show the stages, build arguments and stage graph of a Dockerfile',
  builder: (y) =>
    y
      .option('file', { alias: 'f', type: 'string', default: 'Dockerfile', describe: 'Dockerfile to read (- for stdin)' })
      .option('target', { type: 'string', describe: 'Stage to outline the build of (default: the last)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print JSON' }),
  handler: async (args, io) => {
    const ast = await loadDockerfile(args.file as string, io);
    const o = outline(parseStages(ast), args.target as string | undefined);
    if (args.json) {
      io.stdout.write(JSON.stringify(o, null, 2) + '\n');
      return;
    }
    const lines: string[] = [];
    if (o.args.length) {
      lines.push('Build arguments (before the first FROM):');
      for (const a of o.args) lines.push(`  ${a.name}${a.default !== undefined ? `=${a.default}` : ' (no default)'}    line ${a.line}`);
      lines.push('');
    }
    lines.push('Stages:');
    for (const s of o.stages) {
      const built = o.build.includes(s.index) ? (s.index === o.target ? '*' : '+') : ' ';
      lines.push(`${built} ${label(s)}: FROM ${s.base}${s.platform ? ` --platform=${s.platform}` : ''}    line ${s.line}`);
      if (s.needs.length) lines.push(`      needs: ${s.needs.map((n) => label(o.stages[n])).join(', ')}`);
      for (const a of s.args) lines.push(`      ARG ${a.name}${a.default !== undefined ? `=${a.default}` : ''}`);
    }
    lines.push('');
    lines.push(`Target: ${label(o.stages[o.target])}; builds ${o.build.map((n) => label(o.stages[n])).join(' → ')}`);
    lines.push('(* target, + built for it, blank: not reachable, skipped)');
    io.stdout.write(lines.join('\n') + '\n');
  },
};
