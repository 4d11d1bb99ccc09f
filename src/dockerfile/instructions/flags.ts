/**
 * Instruction flags (`--from=build`, `--link`, `--mount=...`) checked against the
 * grammar table, with BuildKit's rules: unknown flags, repeats of single-valued flags,
 * missing values and non-boolean values for boolean flags are errors; a bare `--`
 * ends the flags.
 */
import type { FlagSpec } from '../../../grammar/instructions.js';
import { clip, InstructionProblem, suggest } from './problem.js';

/** Flag values by name: only the flags that were given. */
export interface ParsedFlags {
  bools: Map<string, boolean>;
  strings: Map<string, string>;
  lists: Map<string, string[]>;
  /** Names in the order first given. */
  used: string[];
  /** The raw word of each flag (for pointing at it in errors). */
  words: Map<string, string>;
}

/** Validates raw flag words (quotes already removed) of one instruction against `specs`. */
export function parseFlags(words: readonly string[], specs: readonly FlagSpec[], instruction: string): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const out: ParsedFlags = { bools: new Map(), strings: new Map(), lists: new Map(), used: [], words: new Map() };
  for (const [i, word] of words.entries()) {
    if (word === '--') break;
    if (!word.startsWith('--')) {
      throw new InstructionProblem('E_INVALID_FLAG', `arg should start with -- : ${word}`, word);
    }
    const eq = word.indexOf('=');
    const flagName = eq < 0 ? word : word.slice(0, eq);
    const value = eq < 0 ? undefined : word.slice(eq + 1);
    const name = flagName.slice(2);
    const spec = byName.get(name);
    if (!spec) {
      const guess = suggest(name, specs.map((s) => s.name), true);
      const valid = specs.length === 0
        ? `${instruction} takes no flags`
        : `valid flags for ${instruction}: ${specs.map((s) => '--' + s.name).join(', ')}`;
      throw new InstructionProblem('E_UNKNOWN_FLAG', `unknown flag: ${clip(flagName)}${guess ? ` (did you mean --${guess}?)` : ''}`, flagName, valid);
    }
    if (out.words.has(name) && spec.type !== 'strings') {
      const nth = words.slice(0, i + 1).filter((w) => w === word).length;
      throw new InstructionProblem('E_DUPLICATE_FLAG', `duplicate flag specified: ${flagName}`, word,
        `${flagName} may be given only once on ${instruction}`, nth);
    }
    if (!out.words.has(name)) {
      out.used.push(name);
      out.words.set(name, word);
    }
    switch (spec.type) {
      case 'bool': {
        if (value === '') {
          throw new InstructionProblem('E_INVALID_FLAG', `missing a value on flag: ${flagName}`, word, `write ${flagName} or ${flagName}=true|false`);
        }
        const v = (value ?? 'true').toLowerCase();
        if (v !== 'true' && v !== 'false') {
          throw new InstructionProblem('E_INVALID_FLAG', `expecting boolean value for flag ${flagName}, not: ${clip(value ?? '')}`, word,
            `write ${flagName} or ${flagName}=true|false`);
        }
        out.bools.set(name, v === 'true');
        break;
      }
      case 'string':
        if (value === undefined) {
          throw new InstructionProblem('E_INVALID_FLAG', `missing a value on flag: ${flagName}`, word,
            `write ${flagName}=${spec.valueHint ?? spec.values?.join('|') ?? '<value>'}`);
        }
        out.strings.set(name, value);
        break;
      case 'strings':
        if (value === undefined) {
          throw new InstructionProblem('E_INVALID_FLAG', `missing a value on flag: ${flagName}`, word,
            `write ${flagName}=${spec.valueHint ?? '<value>'}`);
        }
        if (!out.lists.has(name)) out.lists.set(name, []);
        out.lists.get(name)!.push(value);
        break;
    }
  }
  return out;
}
