/**
 * The frontend's view of the shell lexer (src/dockerfile/shell.ts, BuildKit's rules):
 * variable lookup over `KEY=value` lists, and the knobs the frontend uses.
 */
import { ShellLexer } from '../dockerfile/shell.js';

/** Lookup of variables for expansion (later definitions win). */
export interface EnvGetter {
  get(key: string): string | undefined;
  keys(): string[];
}

/** An EnvGetter over `KEY=value` strings. */
export function envFromList(list: string[]): EnvGetter {
  const m = new Map<string, string>();
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i < 0) m.set(kv, '');
    else m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return { get: (k) => m.get(k), keys: () => [...m.keys()] };
}

export interface LexOptions {
  /** Keep `$VAR` text as written when VAR is unset (RUN display names). */
  skipUnsetEnv?: boolean;
  /** Keep quote characters in the output (BuildKit's RawQuotes). */
  rawQuotes?: boolean;
  /** Treat quotes as ordinary characters (heredoc bodies). */
  skipProcessQuotes?: boolean;
}

/** A shell-word lexer for one escape token. */
export class Lexer {
  private readonly lx: ShellLexer;
  constructor(escape: string = '\\', opts: LexOptions = {}) {
    this.lx = new ShellLexer(escape, opts);
  }

  /** Expands one word; whitespace is kept, quotes removed. */
  processWord(word: string, env: EnvGetter): string {
    return this.lx.processWord(word, env);
  }

  /** Expands and splits into words on unquoted whitespace (EXPOSE). */
  processWords(word: string, env: EnvGetter): string[] {
    return this.lx.processWords(word, env);
  }
}
