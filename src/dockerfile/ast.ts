/** A source range in a Dockerfile: 1-based lines, 1-based columns (0 = whole line). */
export interface Range {
  startLine: number;
  startCol: number;
  endLine: number;
  endCol: number;
}

/** A heredoc body attached to RUN/COPY/ADD (`<<EOF` ... `EOF`). */
export interface Heredoc {
  /** Delimiter word with quotes removed. */
  name: string;
  /** Body text, each line ending in `\n`, tabs stripped for `<<-`. */
  content: string;
  /** False when the delimiter was quoted: the body is not expanded. */
  expand: boolean;
  /** True for `<<-` (leading tabs stripped). */
  chomp: boolean;
  /** File descriptor prefix as in `3<<EOF` (undefined when none). */
  fd?: number;
}

/**
 * One instruction as BuildKit's parser produces it, before typing.
 * `args` follows BuildKit's per-instruction line parsers exactly, so the
 * dump of a node is byte-for-byte BuildKit's.
 */
export interface Instruction {
  /** Instruction keyword lower-cased (`run`, `copy`, ...; unknown words too). */
  cmd: string;
  /** Keyword as written in the file. */
  keyword: string;
  /** Leading `--flag[=value]` words, raw. */
  flags: string[];
  /** Arguments (see the module doc of parser.ts for each instruction's shape). */
  args: string[];
  /** True when the arguments came from a JSON array (exec form). */
  json: boolean;
  /** The nested instruction of ONBUILD. */
  sub?: Instruction;
  /** Heredoc bodies, in order of their markers. */
  heredocs: Heredoc[];
  /** The logical line after continuation joining, as BuildKit's `Original`. */
  original: string;
  /** Comment lines directly above the instruction. */
  comments: string[];
  range: Range;
}

/** A parser directive (`# syntax=`, `# escape=`, `# check=`). */
export interface Directive {
  name: string;
  value: string;
  line: number;
}

/** The parsed Dockerfile. */
export interface DockerfileAST {
  /** File name used in error messages. */
  file: string;
  instructions: Instruction[];
  directives: Directive[];
  /** `\` or `` ` ``. */
  escapeToken: string;
  /** Non-fatal findings (empty continuation lines, ...). */
  warnings: { message: string; line: number }[];
  /** The source split into lines (no line terminators), for error excerpts. */
  lines: string[];
}
